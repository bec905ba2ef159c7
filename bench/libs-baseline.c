/* The reference point of the agent's memory target: a bare process that links what the agent
 * links (libmicrohttpd, jansson, SQLite, libsodium), touches each once and serves HTTP on
 * loopback. bench/agent-core measures it beside the agent, so the agent's own cost shows apart
 * from the libraries'. Usage: libs-baseline PORT */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **ctx)
{
	static const char body[] = "{\"ok\":true}";
	struct MHD_Response *r;
	enum MHD_Result rc;

	(void)cls, (void)url, (void)method, (void)version, (void)data, (void)size, (void)ctx;
	r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	rc = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return rc;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct MHD_Daemon *d;
	sqlite3 *db = NULL;
	json_t *j;

	if (argc != 2 || sodium_init() < 0)
		return 2;
	j = json_loads("{\"a\": [1, 2, 3]}", 0, NULL);
	json_decref(j);
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL))
		return 1;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* loopback only */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
	                     (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
	                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
	if (!d)
		return 1;
	for (;;)
		pause();
}
