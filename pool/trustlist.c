/*
 * trustlist.c: whether a job runs here, against the trust list trust.c keeps current (a leaf:
 * jobs.c asks it for every job it might run, and trust.c sits above jobs.c).
 */
#include "pool/auth.h"
#include "pool/internal.h"

/* Our own key, or a listed one. */
static bool trusted(const pool_t *pool, const key_pub_t *key)
{
    key_pub_t self;
    key_public(pool->key, &self);
    if (key_pub_equal(key, &self))
        return true;
    for (size_t i = 0; i < pool->n_trusted; i++)
        if (key_pub_equal(key, &pool->trusted[i]))
            return true;
    return false;
}

bool pool__job_trusted(const pool_t *pool, const job_t *j, uint64_t now_ms, const char **endorser)
{
    if (endorser)
        *endorser = NULL;
    if (!j->signed_job)
        return false;
    if (trusted(pool, &j->submitter))
        return true;
    /* Each endorsement's signature was checked when the manifest was taken (discover.c). */
    for (size_t i = 0; i < j->man.n_endorsements; i++) {
        const manifest_endorsement_t *e = &j->man.endorsements[i];
        key_pub_t by;
        if (key_pub_from_hex(e->by, KEY_PUB_HEX_LEN, &by) != 0 || (e->until_ms && now_ms >= e->until_ms))
            continue;
        if (trusted(pool, &by)) {
            if (endorser)
                *endorser = e->by;
            return true;
        }
    }
    return false;
}
