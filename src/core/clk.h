/* Clocks in milliseconds: monotonic for deadlines, real time for records. */
#ifndef OUTPOST_CLK_H
#define OUTPOST_CLK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clk_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clk_real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
