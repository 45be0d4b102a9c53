/*
 * reply.c: answers of the peer API shared by its handlers.
 */
#include <jansson.h>
#include <string.h>

#include "pool/internal.h"

void pool__api_error(httpd_req_t *r, unsigned status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    httpd_reply_take(r, status, "application/json", body, strlen(body));
}

