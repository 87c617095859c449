/*
 * sse-server: a Server-Sent Events broadcast server.
 */
#include "config.h"
#include "server.h"

#include <stdlib.h>

int main(int argc, char **argv)
{
    struct config cfg;
    switch (config_parse(&cfg, argc, argv)) {
    case CONFIG_EXIT_OK:
        return EXIT_SUCCESS;
    case CONFIG_EXIT_ERROR:
        return 2;
    case CONFIG_RUN:
        break;
    }

    static struct server srv;
    int rc = server_init(&srv, &cfg);
    if (rc == 0) {
        rc = server_run(&srv);
    }
    server_release(&srv);
    return rc == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
