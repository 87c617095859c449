/*
 * api: routes a parsed request to its handler -- the event streams, the
 * publish endpoint, CORS preflight and static files -- and answers it
 * through the conn response functions.
 */
#ifndef SSE_API_H
#define SSE_API_H

#include <stdbool.h>
#include <stddef.h>

struct worker;
struct conn;
struct http_request;

/* Answers one request. `body` (body_len bytes) is the decoded request body. */
void api_handle(struct worker *wk, struct conn *c, const struct http_request *req, const char *body,
                size_t body_len);

/* The request is a publish (POST /message), from its head alone. */
bool api_publishes(const struct http_request *req);

#endif
