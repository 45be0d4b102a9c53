/*
 * discover.c: the pool's other peers and the jobs they publish.
 *
 * Discovery: a submitter offers a new job to its pool peers at once (volunteer.c, /v1/offer), and,
 * as the fallback, every --discover-ms (1 s) the peer asks each pool peer it knows (from the
 * tracker, --peer, or a peer that greeted it) for its /v1/jobs. Either way a job id it has not seen
 * is fetched as /v1/manifest/<id> (one GET per id at a time), and accepted only if SHA-256 of the
 * bytes is the id and the manifest decodes (every limit checked). The job then appears in jobs/ (as
 * <name>@<8 hex> if the name is taken here), read-only, and free slots ask for its tasks at once.
 *
 * Reads of those jobs' files are the view's (fs/read.c, through pool_block_read).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/files.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "pool/auth.h"
#include "pool/internal.h"
#include "pool/wire.h"

#define POOL_DISCOVER_MS 1000
#define POOL_MAX_MANIFEST_GETS 64 /* manifests being fetched at once; offers past it wait for the poll */
#ifndef POOL_MAX_REFUSED
#define POOL_MAX_REFUSED 4096 /* slots of the table of manifests refused lately */
#endif
#ifndef POOL_REFUSED_MS
#define POOL_REFUSED_MS (10 * 60 * 1000) /* how long a refused manifest is not asked for again */
#endif
#ifndef POOL_DROP_MS
#define POOL_DROP_MS 10000 /* a pool peer silent this long is forgotten (until announced again) */
#endif

/* ---- peers of the pool ---- */

static bool peer_known(char **list, size_t n, const char *url)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], url) == 0)
            return true;
    return false;
}

/* Pool peers whose base URL is on host ip, to bound what one host may add. */
static size_t peers_on_host(pool_t *pool, const char *ip)
{
    size_t n = 0, len = strlen(ip);
    for (size_t i = 0; i < pool->n_pool_peers; i++)
        if (!strncmp(pool->pool_peers[i], "http://", 7) && !strncmp(pool->pool_peers[i] + 7, ip, len) &&
            pool->pool_peers[i][7 + len] == ':')
            n++;
    return n;
}

bool pool__is_pool_peer(const pool_t *pool, const char *url)
{
    return peer_known(pool->pool_peers, pool->n_pool_peers, url);
}

bool pool__add_peer(pool_t *pool, const char *url)
{
    if (peer_known(pool->pool_peers, pool->n_pool_peers, url) || pool->n_pool_peers >= POOL_MAX_POOL_PEERS)
        return false;
    if (pool->opts.http_url && strcmp(url, pool->opts.http_url) == 0)
        return false; /* ourselves */
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *colon = strrchr(host, ':');
    char h[256];
    snprintf(h, sizeof(h), "%.*s", (int)(colon ? (size_t)(colon - host) : strlen(host)), host);
    if (peers_on_host(pool, h) >= POOL_MAX_PEERS_PER_HOST) {
        if (!pool->host_cap_said)
            log_warn("pool peer %s not added: %s has %d already (POOL_MAX_PEERS_PER_HOST)", url, h,
                     POOL_MAX_PEERS_PER_HOST);
        pool->host_cap_said = true;
        return false;
    }
    pool->pool_peers = xreallocarray(pool->pool_peers, pool->n_pool_peers + 1, sizeof(char *));
    pool->pool_fail_since = xreallocarray(pool->pool_fail_since, pool->n_pool_peers + 1, sizeof(uint64_t));
    pool->pool_fail_since[pool->n_pool_peers] = 0;
    pool->pool_peers[pool->n_pool_peers++] = xstrdup(url);
    pool->peers_dirty = true;
    pool__note(pool, LOG_LEVEL_INFO, "pool peer %s", url);
    pool->up.vol_new_peer(pool, url);
    return true;
}


void pool__job_add_peer(job_t *j, const char *url, bool origin)
{
    size_t i = 0;
    while (i < j->n_peers && strcmp(j->peers[i], url) != 0)
        i++;
    if (i == j->n_peers) {
        if (j->n_peers >= POOL_MAX_POOL_PEERS)
            return;
        j->peers = xreallocarray(j->peers, j->n_peers + 1, sizeof(char *));
        j->peers[j->n_peers++] = xstrdup(url);
    }
    if (origin && i > 0) { /* leases go to peers[0]: the submitter, which offered it */
        char *p = j->peers[i];
        memmove(&j->peers[1], &j->peers[0], i * sizeof(char *));
        j->peers[0] = p;
    }
}

/* ---- discovery ---- */

typedef struct disc {
    pool_t *pool;
    char *peer;
    char id[HASH_HEX_LEN + 1];
    bool origin;       /* manifest GETs: peer says it is the submitter (it offered or listed it as its own) */
    char sig[KEY_SIG_HEX_LEN + 1]; /* the signature of the id that came with the offer or listing */
    bool has_claimant;
    key_pub_t claimant;            /* who says it is the submitter (the offer's signer, or peer's key) */
    key_pub_t submitter;           /* the manifest's submitter key, once its signature verified */
    struct disc *next; /* pool->manifests (until its manifest is decoded) */
    /* a manifest being checked and decoded in the thread pool (up to MANIFEST_MAX_BYTES) */
    uv_work_t work;
    char *body;
    size_t len;
    manifest_t man;
    int rc;
    char why[256];
    /* a /v1/jobs answer being decoded in the thread pool (up to WIRE_MAX_JOBS_BODY) */
    wire_job_t *es;
    size_t n, dropped;
    bool complete;
} disc_t;

/* A manifest refused (bad bytes, a bad signature, a path out of the job...) is not asked for again
 * from the same peer with the same signature for POOL_REFUSED_MS: a peer that lists it at every
 * poll (one that is hostile, or runs a version whose manifests this one cannot read) would otherwise
 * cost a fetch, a hash and a decode, and a line in the log, every second. A direct-mapped table of
 * POOL_MAX_REFUSED slots by job id (O(1) for each entry of a listing; a newer refusal takes the
 * slot), each with a hash of the peer and the signature. */
typedef struct refused {
    hash_t id;
    uint64_t who;      /* FNV-1a of peer "\n" sig */
    uint64_t until_ms; /* 0: empty */
} refused_t;

static uint64_t refused_who(const char *peer, const char *sig)
{
    uint64_t h = 14695981039346656037ull;
    for (const char *p = peer; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
    for (const char *p = sig ? sig : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static refused_t *refused_slot(pool_t *pool, const hash_t *id)
{
    if (!pool->refused)
        pool->refused = xcalloc(POOL_MAX_REFUSED, sizeof(*pool->refused));
    return &pool->refused[((size_t)id->b[0] << 8 | id->b[1]) % POOL_MAX_REFUSED];
}

static bool refused_lately(pool_t *pool, const hash_t *id, const char *peer, const char *sig)
{
    refused_t *r = refused_slot(pool, id);
    return r->until_ms > pool_now_ms() && hash_equal(&r->id, id) && r->who == refused_who(peer, sig);
}

static void refused_note(pool_t *pool, const char *id_hex, const char *peer, const char *sig)
{
    hash_t id;
    if (hash_from_hex(id_hex, HASH_HEX_LEN, &id) != 0)
        return;
    refused_t *r = refused_slot(pool, &id);
    *r = (refused_t){.id = id, .who = refused_who(peer, sig), .until_ms = pool_now_ms() + POOL_REFUSED_MS};
}

/* Frees d and what it holds (whichever of manifest, list and body it got). */
static void disc_free(disc_t *d)
{
    manifest_release(&d->man);
    free(d->es);
    free(d->body);
    free(d->peer);
    free(d);
}

static void disc_unlink(disc_t *d)
{
    pool_t *pool = d->pool;
    for (disc_t **pp = &pool->manifests; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            pool->n_manifests--;
            break;
        }
    }
}

/* An answer is decoded in the thread pool: its body is copied (the fetcher's buffer is valid during
 * its callback only) and work runs there, then done on the loop (pool_stop waits for it). */
static void decode_later(disc_t *d, const char *body, size_t len, uv_work_cb work, uv_after_work_cb done)
{
    d->body = xmalloc(len ? len : 1);
    memcpy(d->body, body, len);
    d->len = len;
    d->work.data = d;
    d->pool->pending_work++;
    uv_queue_work(d->pool->loop, &d->work, work, done);
}

/* Thread pool: SHA-256 of the bytes must be the job id; then the manifest is decoded (every limit
 * checked): both cost milliseconds for a big job, off the loop. */
static void manifest_work(uv_work_t *w)
{
    disc_t *d = w->data;
    hash_t id, got;
    hash_from_hex(d->id, HASH_HEX_LEN, &id);
    manifest_id(d->body, d->len, &got);
    if (!hash_equal(&id, &got)) {
        snprintf(d->why, sizeof(d->why), "its bytes do not hash to the job id");
        d->rc = -EBADMSG;
        return;
    }
    d->rc = manifest_decode(&d->man, d->body, d->len, d->why, sizeof(d->why));
    if (d->rc)
        return;
    /* Only a job its submitter signed is taken: the key is in the manifest (the id covers it). */
    if (!d->man.submitter) {
        snprintf(d->why, sizeof(d->why), "it names no submitter key (an unsigned job)");
        d->rc = -EPERM;
    } else if (!auth_job_verify(d->man.submitter, d->id, d->sig, &d->submitter)) {
        snprintf(d->why, sizeof(d->why), "%s", d->sig[0] ? "its signature does not verify against its submitter's key"
                                                          : "no signature came with it");
        d->rc = -EPERM;
    }
    for (size_t i = 0; d->rc == 0 && i < d->man.n_endorsements; i++) {
        const manifest_endorsement_t *me = &d->man.endorsements[i];
        auth_endorsement_t e = {.who = d->submitter, .until_ms = me->until_ms};
        if (key_pub_from_hex(me->by, strlen(me->by), &e.by) != 0 || key_sig_from_hex(me->sig, strlen(me->sig), e.sig) ||
            !auth_endorsement_verify(&e)) {
            snprintf(d->why, sizeof(d->why), "its endorsement by %.16s... does not verify (a forged endorsement)",
                     me->by);
            d->rc = -EPERM;
        }
    }
}

static void manifest_done(uv_work_t *w, int status)
{
    disc_t *d = w->data;
    pool_t *pool = d->pool;
    pool->pending_work--;
    disc_unlink(d);
    if (d->rc) {
        log_warn("manifest %s from %s refused: %s (not asked for again for %d min)", d->id, d->peer, d->why,
                 POOL_REFUSED_MS / 60000);
        refused_note(pool, d->id, d->peer, d->sig);
    } else if (!d->has_claimant || !key_pub_equal(&d->claimant, &d->submitter)) {
        char who[KEY_PUB_HEX_LEN + 1] = "(key not known yet)";
        if (d->has_claimant)
            key_pub_to_hex(&d->claimant, who);
        if (d->has_claimant)
            log_warn("job %s: %s (key %.16s...) says it is its submitter, but the job is signed by %.16s...: ignored",
                     d->id, d->peer, who, d->man.submitter);
        else
            log_debug("job %s: %s lists it as its own but its key is not known yet: asked again later", d->id, d->peer);
    } else if (!pool->stopping && !pool_job_by_id(pool, d->id)) {
        pool__job_add_remote(pool, d->id, &d->man, d->peer, d->sig, &d->submitter);
        job_t *j = pool_job_by_id(pool, d->id);
        if (j && j->remote) {
            if (d->origin)
                pool__job_add_peer(j, d->peer, true);
            pool->up.vol_kick(pool); /* free slots ask for its tasks now, not at the next tick */
        }
    }
    disc_free(d);
}

static void on_manifest(int status, unsigned code, const char *body, size_t len, void *arg)
{
    disc_t *d = arg;
    pool_t *pool = d->pool;
    pool->pending_gets--;
    if (!status && code == 200 && !pool->stopping && !pool_job_by_id(pool, d->id)) {
        manifest_init(&d->man);
        return decode_later(d, body, len, manifest_work, manifest_done); /* still in pool->manifests */
    }
    disc_unlink(d);
    if (status || code != 200)
        log_warn("manifest %s from %s refused: %s", d->id, d->peer, status ? strerror(-status) : "HTTP error");
    disc_free(d);
}

bool pool__is_submitter(pool_t *pool, const job_t *j, const char *url)
{
    key_pub_t k;
    return j->signed_job && pool__bound_key(pool, url, &k) && key_pub_equal(&k, &j->submitter);
}

void pool__get_manifest(pool_t *pool, const char *peer, const char *id, bool origin, const char *sig,
                        const key_pub_t *claimant)
{
    hash_t h;
    if (pool->stopping || strlen(id) != HASH_HEX_LEN || hash_from_hex(id, HASH_HEX_LEN, &h) != 0 ||
        pool_job_by_id(pool, id) || pool->n_manifests >= POOL_MAX_MANIFEST_GETS)
        return;
    size_t held_cap = pool->opts.max_remote_jobs ? pool->opts.max_remote_jobs : POOL_MAX_REMOTE_JOBS;
    if (pool->n_remote_jobs + pool->n_manifests >= held_cap) {
        if (!pool->remote_cap_said)
            log_warn("job %s of %s is not fetched: %zu jobs of other peers are held or being fetched "
                     "(--max-remote-jobs %zu)", id, peer, pool->n_remote_jobs + pool->n_manifests, held_cap);
        pool->remote_cap_said = true;
        return;
    }
    pool->remote_cap_said = false;
    if (refused_lately(pool, &h, peer, sig)) {
        log_debug("manifest %s from %s: refused lately, not asked for again", id, peer);
        return;
    }
    for (disc_t *p = pool->manifests; p; p = p->next)
        if (!strcmp(p->id, id))
            return; /* on its way: the offer and the poll both found it */
    disc_t *m = xcalloc(1, sizeof(*m));
    m->pool = pool;
    m->peer = xstrdup(peer);
    m->origin = origin;
    snprintf(m->sig, sizeof(m->sig), "%s", sig ? sig : "");
    if (claimant) {
        m->has_claimant = true;
        m->claimant = *claimant;
    }
    memcpy(m->id, id, HASH_HEX_LEN + 1);
    char *url = xasprintf("%s/v1/manifest/%s", peer, id);
    /* Manifests past FETCH_MAX_GET_BODY (a job of ~60k files of 256 KiB) are not fetched yet. */
    size_t cap = MANIFEST_MAX_BYTES < FETCH_MAX_GET_BODY ? MANIFEST_MAX_BYTES : FETCH_MAX_GET_BODY;
    int rc = fetch_get(pool->fetch, url, cap, on_manifest, m);
    if (rc == 0) {
        pool->pending_gets++;
        m->next = pool->manifests;
        pool->manifests = m;
        pool->n_manifests++;
    } else {
        log_warn("GET %s: %s", url, strerror(-rc));
        disc_free(m);
    }
    free(url);
}

/* Notes whether a pool peer answered its /v1/jobs (any HTTP answer counts: it is alive). */
static void pool_peer_answered(pool_t *pool, const char *url, bool answered)
{
    for (size_t i = 0; i < pool->n_pool_peers; i++) {
        if (strcmp(pool->pool_peers[i], url) != 0)
            continue;
        if (answered && pool->pool_fail_since[i]) {
            /* back after failing: it may have restarted and forgotten us; a greeting tells it */
            log_info("pool peer %s answers again: greeting it", url);
            pool->pool_fail_since[i] = 0;
            pool->up.vol_new_peer(pool, url);
            if (pool->announce) /* its embedded tracker may be the pool's: tell it we are here */
                announce_now(pool->announce);
        } else if (answered)
            pool->pool_fail_since[i] = 0;
        else if (!pool->pool_fail_since[i])
            pool->pool_fail_since[i] = pool_now_ms();
        return;
    }
}

/*
 * Forgets pool peers (learnt from the tracker or a greeting, not --peer) that have not answered
 * for POOL_DROP_MS: a peer that left without a "stopped" announce stays listed by the tracker
 * until it expires. If it comes back, the tracker or its greeting adds it again.
 */
static void pool_drop_silent(pool_t *pool)
{
    uint64_t now = pool_now_ms();
    for (size_t i = pool->n_static_peers; i < pool->n_pool_peers;) {
        if (!pool->pool_fail_since[i] || now - pool->pool_fail_since[i] < POOL_DROP_MS) {
            i++;
            continue;
        }
        pool__note(pool, LOG_LEVEL_INFO, "pool peer %s dropped: no answer for %llu s", pool->pool_peers[i],
                   (unsigned long long)((now - pool->pool_fail_since[i]) / 1000));
        char *gone = pool->pool_peers[i];
        pool->n_pool_peers--;
        pool->pool_peers[i] = pool->pool_peers[pool->n_pool_peers];
        pool->pool_fail_since[i] = pool->pool_fail_since[pool->n_pool_peers];
        pool->up.vol_peer_dropped(pool, gone); /* its leases go back to waiting now, not when they expire */
        free(gone);
        pool->peers_dirty = true;
    }
}

/*
 * A remote job its submitter no longer lists (it replaced or forgot it) goes away here too, so
 * jobs/ shows what the pool has; a job whose submitter does not answer stays.
 */
static void forget_unlisted(pool_t *pool, const char *peer, uint64_t gen)
{
    for (job_t *j = pool->joblist, *next; j; j = next) {
        next = j->next;
        if (j->remote && !j->gone && j->origin_seen && j->listed_gen != gen && j->n_peers > 0 &&
            strcmp(j->peers[0], peer) == 0 && pool__is_submitter(pool, j, peer))
            pool__job_forget_remote(j);
    }
}

static void jobs_work(uv_work_t *w)
{
    disc_t *d = w->data;
    d->rc = wire_jobs_decode(d->body, d->len, &d->es, &d->n, &d->dropped, &d->complete, d->why, sizeof(d->why));
}

static void jobs_done(uv_work_t *w, int status)
{
    disc_t *d = w->data;
    pool_t *pool = d->pool;
    pool->pending_work--;
    pool->pending_gets--; /* counted until decoded: the poll does not pile up requests meanwhile */
    if (pool->stopping) {
        /* nothing is kept */
    } else if (d->rc) {
        log_warn("peer %s: /v1/jobs is refused: %s", d->peer, d->why);
    } else {
        if (d->dropped)
            log_warn("peer %s: /v1/jobs: %zu entries dropped (the first: %s)", d->peer, d->dropped, d->why);
        uint64_t gen = ++pool->listing_gen;
        for (size_t i = 0; i < d->n; i++) {
            const wire_job_t *e = &d->es[i];
            job_t *j = pool_job_by_id(pool, e->id);
            if (j) {
                if (j->remote && e->tasks == j->man.desc.tasks) {
                    /* "mine" counts only from the key that signed the job */
                    bool origin = e->origin && pool__is_submitter(pool, j, d->peer);
                    if (e->origin && !origin && !j->origin_claim_said) {
                        j->origin_claim_said = true;
                        log_warn("job %s: %s lists it as its own, but is not known to hold its submitter's key: "
                                 "taken as a holder of its blocks only", j->name, d->peer);
                    }
                    pool__job_add_peer(j, d->peer, origin);
                    j->origin_seen |= origin;
                    j->listed_gen = gen;
                    if (origin) /* its state and results count only from its submitter */
                        pool__res_remote_seen(j, e, d->peer);
                    if (origin && e->removed && j->listed) { /* its inputs are gone there */
                        pool__note(pool, LOG_LEVEL_INFO, "job %s: removed by its submitter: it leaves jobs/ here",
                                   j->name);
                        j->listed = false;
                        pool__job_changed(j);
                    }
                    if (origin && e->removed)
                        pool__job_release_inputs(j); /* once it is over here too */
                }
                continue;
            }
            /* Only its submitter introduces a job: a job it replaced or forgot must not come
             * back through peers that still list it (they drop it once they notice). */
            /* ... and only once that peer has proven its key by a signed request (its greeting or
             * an offer): until then its claim cannot be checked, and its manifest is not fetched. */
            key_pub_t k;
            if (e->origin && !e->removed && pool__bound_key(pool, d->peer, &k))
                pool__get_manifest(pool, d->peer, e->id, true, e->sig, &k);
        }
        if (d->complete) /* a partial answer may have left some out: nothing is forgotten */
            forget_unlisted(pool, d->peer, gen);
    }
    disc_free(d);
}

static void on_jobs(int status, unsigned code, const char *body, size_t len, void *arg)
{
    disc_t *d = arg;
    pool_t *pool = d->pool;
    if (status != -ECANCELED)
        pool_peer_answered(pool, d->peer, status == 0);
    if (status || code != 200)
        log_debug("peer %s: /v1/jobs: %s %u", d->peer, status ? strerror(-status) : "HTTP", code);
    if (!status && code == 200 && !pool->stopping) { /* decoded in the thread pool */
        return decode_later(d, body, len, jobs_work, jobs_done);
    }
    pool->pending_gets--;
    disc_free(d);
}

/* ---- the pool peers remembered across restarts: DATA/peers, one base URL per line ---- */

typedef struct peersave {
    uv_work_t work;
    pool_t *pool;
    char *path, *text;
} peersave_t;

static void peers_save_work(uv_work_t *w)
{
    peersave_t *s = w->data;
    char *tmp = xasprintf("%s.tmp", s->path);
    FILE *f = fopen(tmp, "we");
    bool ok = f && fputs(s->text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, s->path) != 0) {
        log_warn("%s: cannot remember the pool's peers: %s", s->path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
}

static void peers_save_done(uv_work_t *w, int status)
{
    peersave_t *s = w->data;
    s->pool->pending_work--;
    s->pool->peers_saving = false;
    free(s->path);
    free(s->text);
    free(s);
}

/* Writes DATA/peers again (in the thread pool) if the pool peers changed since it was last written. */
static void peers_save(pool_t *pool)
{
    if (!pool->peers_dirty || pool->peers_saving)
        return;
    pool->peers_dirty = false;
    pool->peers_saving = true;
    peersave_t *s = xcalloc(1, sizeof(*s));
    s->work.data = s;
    s->pool = pool;
    s->path = xasprintf("%s/peers", pool->data_dir);
    s->text = wire_peers_format(pool->pool_peers, pool->n_pool_peers);
    pool->pending_work++;
    uv_queue_work(pool->loop, &s->work, peers_save_work, peers_save_done);
}

typedef struct peersload {
    pool_t *pool;
    size_t n;
} peersload_t;

static void peer_remembered(void *arg, const char *url)
{
    peersload_t *l = arg;
    if (pool__add_peer(l->pool, url))
        l->n++;
}

void pool__peers_load(pool_t *pool)
{
    char *path = xasprintf("%s/peers", pool->data_dir), *text;
    size_t len;
    if (files_read_small(path, 256u * POOL_MAX_POOL_PEERS, &text, &len) != 0) {
        free(path);
        return; /* none yet */
    }
    peersload_t l = {.pool = pool};
    size_t bad = wire_peers_parse(text, len, peer_remembered, &l), n = l.n;
    if (bad)
        log_warn("%s: %zu lines are not a peer's base URL: skipped", path, bad);
    if (n)
        log_info("%zu pool peers remembered from %s: greeting them", n, path);
    pool->peers_dirty = false; /* as written */
    free(text);
    free(path);
}

static void on_discover(uv_timer_t *t)
{
    pool_t *pool = t->data;
    if (pool->stopping)
        return;
    pool_drop_silent(pool);
    peers_save(pool);
    if (pool->pending_gets > 4 * pool->n_pool_peers + 16)
        return; /* answers are still coming: do not pile up requests */
    for (size_t i = 0; i < pool->n_pool_peers; i++) {
        disc_t *d = xcalloc(1, sizeof(*d));
        d->pool = pool;
        d->peer = xstrdup(pool->pool_peers[i]);
        char *url = xasprintf("%s/v1/jobs", d->peer);
        int rc = fetch_get(pool->fetch, url, WIRE_MAX_JOBS_BODY, on_jobs, d);
        if (rc == 0) {
            pool->pending_gets++;
        } else {
            log_warn("GET %s: %s", url, strerror(-rc));
            disc_free(d);
        }
        free(url);
    }
}

static void on_pool_peers(const announce_peer_t *peers, size_t n, void *arg)
{
    pool_t *pool = arg;
    char url[64];
    for (size_t i = 0; i < n; i++) {
        announce_peer_url(&peers[i], url, sizeof(url));
        pool__add_peer(pool, url);
    }
}

void pool__discover_start(pool_t *pool)
{
    pool->discover = xcalloc(1, sizeof(*pool->discover));
    uv_timer_init(pool->loop, pool->discover);
    pool->discover->data = pool;
    uv_timer_start(pool->discover, on_discover, 0, pool->opts.discover_ms ? pool->opts.discover_ms : POOL_DISCOVER_MS);
    if (!pool->opts.tracker_url || !pool->opts.http_port)
        return;
    /* The pool is a swarm of its own (Preon's "idle" job): every peer announces there. */
    announce_opts_t ao = {.tracker_url = pool->opts.tracker_url, .port = pool->opts.http_port};
    uint8_t ih[ANNOUNCE_HASH_LEN];
    announce_pool_hash(pool->opts.pool ? pool->opts.pool : "default", ih);
    int rc = announce_new(pool->loop, pool->fetch, &ao, &pool->announce);
    if (!rc)
        rc = announce_add(pool->announce, ih, true, on_pool_peers, pool);
    if (rc)
        log_error("tracker %s: %s (this peer stays out of the pool)", pool->opts.tracker_url, strerror(-rc));
    else
        log_info("pool '%s' through %s", pool->opts.pool ? pool->opts.pool : "default", pool->opts.tracker_url);
}

void pool__discover_stop(pool_t *pool)
{
    if (pool->announce)
        announce_close(pool->announce, NULL, NULL);
    pool->announce = NULL;
    if (pool->discover)
        uv_close((uv_handle_t *)pool->discover, pool__handle_free);
    pool->discover = NULL;
}
