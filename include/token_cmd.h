/*
 * token_cmd: `sse-server token`, which prints a token signed with a key of a
 * --jwt-key-file, for scripts, operations and the demo.
 */
#ifndef SSE_TOKEN_CMD_H
#define SSE_TOKEN_CMD_H

/* argv[0] is "token". Returns the process exit status (0, or 2 on a usage
 * or key file error, explained on stderr). */
int token_command(int argc, char **argv);

#endif
