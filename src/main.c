/*
 * sse-server: a Server-Sent Events broadcast server.
 */
#include "config.h"
#include "server.h"
#include "token_cmd.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0) {
        return token_command(argc - 1, argv + 1);
    }
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
