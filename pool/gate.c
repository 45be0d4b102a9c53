/*
 * gate.c: request budgets at the door of the peer API (issue 9, item 7; pool/budget.h holds the
 * rule): every request is charged to its host's budget (block and bitfield requests to a larger
 * one), and every signed request to its key's too, once its signature verified (so nobody can spend
 * another key's budget). A request over a budget is answered 429 at once, before any work.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "pool/budget.h"
#include "pool/internal.h"

/* The source address of the request, as text ("?" if unknown): what the per-host budget counts. */
const char *pool__req_host(httpd_req_t *r, char *out, size_t cap)
{
    const struct sockaddr *sa = httpd_req_peer(r);
    const void *a = NULL;
    if (sa && sa->sa_family == AF_INET)
        a = &((const struct sockaddr_in *)sa)->sin_addr;
    else if (sa && sa->sa_family == AF_INET6)
        a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (!a || !inet_ntop(sa->sa_family, a, out, (socklen_t)cap))
        snprintf(out, cap, "?");
    return out;
}

bool pool__over_budget(pool_t *pool, httpd_req_t *r, struct budget *b, const char *who, const char *what)
{
    uint64_t now = uv_now(pool->loop); /* monotonic, ms */
    if (budget_take(b, who, now))
        return false;
    if (now - pool->budget_said_ms >= 10000) { /* said at most every 10 s: a flood must not flood the log */
        pool->budget_said_ms = now;
        uint64_t all = pool__refused(pool);
        log_warn("%s %.80s is over its request budget (%s): refused with 429 (%llu refused in all)", what, who,
                 httpd_req_path(r), (unsigned long long)all);
    }
    httpd_reply_header(r, "Retry-After", "1");
    pool__api_error(r, 429, "over its request budget: slow down (docs/security.md)");
    return true;
}

uint64_t pool__refused(const pool_t *pool)
{
    return budget_refused(pool->host_api) + budget_refused(pool->host_bulk) + budget_refused(pool->key_signed) +
           budget_refused(pool->host_status) + budget_refused(pool->all_status);
}
