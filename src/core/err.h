/* Error codes (enum outpost_err in the public header): names and HTTP statuses. */
#ifndef OUTPOST_ERR_H
#define OUTPOST_ERR_H

#include <outpost/plugin.h>

/* The stable wire name of an error code ("bad_args"); "internal" for anything unknown. */
const char *err_name(int code);
/* The HTTP status that goes with an error code. */
unsigned err_http_status(int code);
/* The code for a wire name, or OUTPOST_E_INTERNAL. */
int err_from_name(const char *name);

#endif
