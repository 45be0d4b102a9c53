/*
 * trustlist.c: whether a key's jobs run here, against the trust list trust.c keeps current (a leaf:
 * jobs.c asks it for every job it might run, and trust.c sits above jobs.c).
 */
#include "pool/internal.h"

bool pool__trusted(const pool_t *pool, const key_pub_t *key)
{
    if (!pool->trust_active)
        return true;
    key_pub_t self;
    key_public(pool->key, &self);
    if (key_pub_equal(key, &self))
        return true;
    for (size_t i = 0; i < pool->n_trusted; i++)
        if (key_pub_equal(key, &pool->trusted[i]))
            return true;
    return false;
}
