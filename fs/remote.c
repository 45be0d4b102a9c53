/*
 * remote.c: jobs published by other peers of the pool, and lazy verified reads of their files.
 *
 * Discovery: a submitter offers a new job to its pool peers at once (volunteer.c, /v1/offer), and,
 * as the fallback, every --discover-ms (1 s) the peer asks each pool peer it knows (from the
 * tracker, --peer, or a peer that greeted it) for its /v1/jobs. Either way a job id it has not seen
 * is fetched as /v1/manifest/<id> (one GET per id at a time), and accepted only if SHA-256 of the
 * bytes is the id and the manifest decodes (every limit checked). The job then appears in jobs/ (as
 * <name>@<8 hex> if the name is taken here), read-only, and free slots ask for its tasks at once.
 *
 * Reads: a read of a remote job's file maps [off, off+size) to blocks; blocks not in the store are
 * fetched (from every peer that lists the job, by the fetcher: verified before they are stored),
 * plus a read-ahead window; the FUSE request is parked and answered once its blocks are all in, with
 * EIO (and a logged reason) if one cannot be had, or EINTR if the reader is interrupted. Only
 * verified bytes ever reach a reader: a block is answered from the fetcher's memory once its hash
 * matched (fetch_block_data, fetch_peek: the store write goes on in the background), or read from
 * the store, where only verified blocks are ever put. The files read are a remote job's inputs or
 * the files of its mirrored results (results.c): fs__node_mfile gives either.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

#define FS_DISCOVER_MS 1000
#define FS_MAX_MANIFEST_GETS 64 /* manifests being fetched at once; offers past it wait for the poll */
/* Read-ahead window in blocks: a new or random reader gets the first, a sequential one doubles it
 * at every read up to the second (the fetcher keeps more blocks than that in memory: fs.c). */
#define FS_READAHEAD_MIN 4
#define FS_READAHEAD_MAX 32
#define FS_MAX_JOBS_REPLY (4u * 1024 * 1024)
#ifndef FS_POOL_DROP_MS
#define FS_POOL_DROP_MS 10000 /* a pool peer silent this long is forgotten (until announced again) */
#endif

/* ---- peers of the pool ---- */

static bool peer_known(char **list, size_t n, const char *url)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], url) == 0)
            return true;
    return false;
}

bool fs__pool_add_peer(fs_t *fs, const char *url)
{
    if (peer_known(fs->pool_peers, fs->n_pool_peers, url) || fs->n_pool_peers >= FS_MAX_POOL_PEERS)
        return false;
    if (fs->opts.http_url && strcmp(url, fs->opts.http_url) == 0)
        return false; /* ourselves */
    fs->pool_peers = xreallocarray(fs->pool_peers, fs->n_pool_peers + 1, sizeof(char *));
    fs->pool_fail_since = xreallocarray(fs->pool_fail_since, fs->n_pool_peers + 1, sizeof(uint64_t));
    fs->pool_fail_since[fs->n_pool_peers] = 0;
    fs->pool_peers[fs->n_pool_peers++] = xstrdup(url);
    log_info("pool peer %s", url);
    fs__vol_new_peer(fs, url);
    return true;
}

size_t fs__pool_peers_on_host(fs_t *fs, const char *ip)
{
    size_t n = 0, len = strlen(ip);
    for (size_t i = 0; i < fs->n_pool_peers; i++)
        if (!strncmp(fs->pool_peers[i], "http://", 7) && !strncmp(fs->pool_peers[i] + 7, ip, len) &&
            fs->pool_peers[i][7 + len] == ':')
            n++;
    return n;
}

void fs__job_add_peer(job_t *j, const char *url, bool origin)
{
    size_t i = 0;
    while (i < j->n_peers && strcmp(j->peers[i], url) != 0)
        i++;
    if (i == j->n_peers) {
        if (j->n_peers >= FS_MAX_POOL_PEERS)
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
    fs_t *fs;
    char *peer;
    char id[HASH_HEX_LEN + 1];
    bool origin;       /* manifest GETs: peer offered the job (it is the submitter) */
    struct disc *next; /* fs->manifests */
} disc_t;

static void on_manifest(int status, unsigned code, const char *body, size_t len, void *arg)
{
    disc_t *d = arg;
    fs_t *fs = d->fs;
    fs->pending_gets--;
    for (disc_t **pp = &fs->manifests; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            fs->n_manifests--;
            break;
        }
    }
    char why[256] = "";
    hash_t id, got;
    if (status || code != 200) {
        snprintf(why, sizeof(why), "%s", status ? strerror(-status) : "HTTP error");
    } else if (!fs->stopping && !fs__job_by_id(fs, d->id)) {
        hash_from_hex(d->id, HASH_HEX_LEN, &id);
        manifest_id(body, len, &got);
        if (!hash_equal(&id, &got)) {
            snprintf(why, sizeof(why), "its bytes do not hash to the job id");
        } else {
            manifest_t m;
            manifest_init(&m);
            if (manifest_decode(&m, body, len, why, sizeof(why)) == 0) {
                fs__job_add_remote(fs, d->id, &m, d->peer);
                why[0] = '\0';
                job_t *j = fs__job_by_id(fs, d->id);
                if (j && j->remote) {
                    if (d->origin)
                        fs__job_add_peer(j, d->peer, true);
                    fs__vol_kick(fs); /* free slots ask for its tasks now, not at the next tick */
                }
            }
            manifest_release(&m);
        }
    }
    if (why[0])
        log_warn("manifest %s from %s refused: %s", d->id, d->peer, why);
    free(d->peer);
    free(d);
}

void fs__remote_get_manifest(fs_t *fs, const char *peer, const char *id, bool origin)
{
    hash_t h;
    if (fs->stopping || strlen(id) != HASH_HEX_LEN || hash_from_hex(id, HASH_HEX_LEN, &h) != 0 ||
        fs__job_by_id(fs, id) || fs->n_manifests >= FS_MAX_MANIFEST_GETS)
        return;
    for (disc_t *p = fs->manifests; p; p = p->next)
        if (!strcmp(p->id, id))
            return; /* on its way: the offer and the poll both found it */
    disc_t *m = xcalloc(1, sizeof(*m));
    m->fs = fs;
    m->peer = xstrdup(peer);
    m->origin = origin;
    memcpy(m->id, id, HASH_HEX_LEN + 1);
    char *url = xasprintf("%s/v1/manifest/%s", peer, id);
    /* Manifests past FETCH_MAX_GET_BODY (a job of ~60k files of 256 KiB) are not fetched yet. */
    size_t cap = MANIFEST_MAX_BYTES < FETCH_MAX_GET_BODY ? MANIFEST_MAX_BYTES : FETCH_MAX_GET_BODY;
    int rc = fetch_get(fs->fetch, url, cap, on_manifest, m);
    if (rc == 0) {
        fs->pending_gets++;
        m->next = fs->manifests;
        fs->manifests = m;
        fs->n_manifests++;
    } else {
        log_warn("GET %s: %s", url, strerror(-rc));
        free(m->peer);
        free(m);
    }
    free(url);
}

/* Notes whether a pool peer answered its /v1/jobs (any HTTP answer counts: it is alive). */
static void pool_peer_answered(fs_t *fs, const char *url, bool answered)
{
    for (size_t i = 0; i < fs->n_pool_peers; i++) {
        if (strcmp(fs->pool_peers[i], url) != 0)
            continue;
        if (answered)
            fs->pool_fail_since[i] = 0;
        else if (!fs->pool_fail_since[i])
            fs->pool_fail_since[i] = fs__now_ms();
        return;
    }
}

/*
 * Forgets pool peers (learnt from the tracker or a greeting, not --peer) that have not answered
 * for FS_POOL_DROP_MS: a peer that left without a "stopped" announce stays listed by the tracker
 * until it expires. If it comes back, the tracker or its greeting adds it again.
 */
static void pool_drop_silent(fs_t *fs)
{
    uint64_t now = fs__now_ms();
    for (size_t i = fs->n_static_peers; i < fs->n_pool_peers;) {
        if (!fs->pool_fail_since[i] || now - fs->pool_fail_since[i] < FS_POOL_DROP_MS) {
            i++;
            continue;
        }
        log_info("pool peer %s dropped: no answer for %llu s", fs->pool_peers[i],
                 (unsigned long long)((now - fs->pool_fail_since[i]) / 1000));
        char *gone = fs->pool_peers[i];
        fs->n_pool_peers--;
        fs->pool_peers[i] = fs->pool_peers[fs->n_pool_peers];
        fs->pool_fail_since[i] = fs->pool_fail_since[fs->n_pool_peers];
        fs__vol_peer_dropped(fs, gone); /* its leases go back to waiting now, not when they expire */
        free(gone);
    }
}

/*
 * A remote job its submitter no longer lists (it replaced or forgot it) goes away here too, so
 * jobs/ shows what the pool has; a job whose submitter does not answer stays.
 */
static void forget_unlisted(fs_t *fs, const char *peer, uint64_t gen)
{
    for (job_t *j = fs->joblist, *next; j; j = next) {
        next = j->next;
        if (j->remote && !j->gone && j->origin_seen && j->listed_gen != gen && j->n_peers > 0 &&
            strcmp(j->peers[0], peer) == 0)
            fs__job_forget_remote(j);
    }
}

static void on_jobs(int status, unsigned code, const char *body, size_t len, void *arg)
{
    disc_t *d = arg;
    fs_t *fs = d->fs;
    fs->pending_gets--;
    json_t *arr = NULL;
    if (status != -ECANCELED)
        pool_peer_answered(fs, d->peer, status == 0);
    if (status || code != 200)
        log_debug("peer %s: /v1/jobs: %s %u", d->peer, status ? strerror(-status) : "HTTP", code);
    if (!status && code == 200 && !fs->stopping) {
        json_error_t err;
        arr = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_array(arr)) {
            log_warn("peer %s: /v1/jobs is not a JSON array", d->peer);
        } else {
            uint64_t gen = ++fs->listing_gen;
            size_t i;
            json_t *o;
            json_array_foreach(arr, i, o) {
                const char *id = json_string_value(json_object_get(o, "id"));
                hash_t h;
                if (!id || strlen(id) != HASH_HEX_LEN || hash_from_hex(id, HASH_HEX_LEN, &h) != 0)
                    continue;
                job_t *j = fs__job_by_id(fs, id);
                if (j) {
                    if (j->remote) {
                        bool origin = json_is_true(json_object_get(o, "origin"));
                        fs__job_add_peer(j, d->peer, origin);
                        j->origin_seen |= origin;
                        j->listed_gen = gen;
                        fs__res_remote_seen(j, o, d->peer);
                    }
                    continue;
                }
                /* Only its submitter introduces a job: a job it replaced or forgot must not come
                 * back through peers that still list it (they drop it once they notice). */
                if (json_is_true(json_object_get(o, "origin")))
                    fs__remote_get_manifest(fs, d->peer, id, true);
            }
            if (json_array_size(arr) < FS_API_MAX_JOBS) /* a full answer may have left some out */
                forget_unlisted(fs, d->peer, gen);
        }
    }
    json_decref(arr);
    free(d->peer);
    free(d);
}

static void on_discover(uv_timer_t *t)
{
    fs_t *fs = t->data;
    if (fs->stopping)
        return;
    pool_drop_silent(fs);
    if (fs->pending_gets > 4 * fs->n_pool_peers + 16)
        return; /* answers are still coming: do not pile up requests */
    for (size_t i = 0; i < fs->n_pool_peers; i++) {
        disc_t *d = xcalloc(1, sizeof(*d));
        d->fs = fs;
        d->peer = xstrdup(fs->pool_peers[i]);
        char *url = xasprintf("%s/v1/jobs", d->peer);
        int rc = fetch_get(fs->fetch, url, FS_MAX_JOBS_REPLY, on_jobs, d);
        if (rc == 0) {
            fs->pending_gets++;
        } else {
            log_warn("GET %s: %s", url, strerror(-rc));
            free(d->peer);
            free(d);
        }
        free(url);
    }
}

static void on_pool_peers(const announce_peer_t *peers, size_t n, void *arg)
{
    fs_t *fs = arg;
    char url[64];
    for (size_t i = 0; i < n; i++) {
        announce_peer_url(&peers[i], url, sizeof(url));
        fs__pool_add_peer(fs, url);
    }
}

void fs__discover_start(fs_t *fs)
{
    fs->discover = xcalloc(1, sizeof(*fs->discover));
    uv_timer_init(fs->loop, fs->discover);
    fs->discover->data = fs;
    uv_timer_start(fs->discover, on_discover, 0, fs->opts.discover_ms ? fs->opts.discover_ms : FS_DISCOVER_MS);
    if (!fs->opts.tracker_url || !fs->opts.http_port)
        return;
    /* The pool is a swarm of its own (Preon's "idle" job): every peer announces there. */
    announce_opts_t ao = {.tracker_url = fs->opts.tracker_url, .port = fs->opts.http_port};
    uint8_t pool[ANNOUNCE_HASH_LEN];
    announce_pool_hash(fs->opts.pool ? fs->opts.pool : "default", pool);
    int rc = announce_new(fs->loop, fs->fetch, &ao, &fs->announce);
    if (!rc)
        rc = announce_add(fs->announce, pool, true, on_pool_peers, fs);
    if (rc)
        log_error("tracker %s: %s (this peer stays out of the pool)", fs->opts.tracker_url, strerror(-rc));
    else
        log_info("pool '%s' through %s", fs->opts.pool ? fs->opts.pool : "default", fs->opts.tracker_url);
}

void fs__discover_stop(fs_t *fs)
{
    if (fs->announce)
        announce_close(fs->announce, NULL, NULL);
    fs->announce = NULL;
    if (fs->discover)
        uv_close((uv_handle_t *)fs->discover, fs__handle_free);
    fs->discover = NULL;
}

/* ---- reads ---- */

/*
 * A parked read: blocks b0 .. b0 + nb - 1 of the file. data[k] holds the verified bytes of block
 * b0 + k while the read waits (held from the fetcher: answered in memory, or arrived through
 * fetch_block_data), or NULL: the block is in the store and is read from there at the end.
 */
typedef struct rread {
    fuse_req_t req;
    fs_t *fs;
    job_t *job;                 /* holds f (its inputs or one of its results) */
    const manifest_file_t *f;
    uint32_t bs;
    size_t size;
    off_t off;
    size_t b0, nb;
    const uint8_t **data;
    unsigned missing;
    int status;
    bool done; /* replied (interrupted): the fetches that are left only land in the store */
    struct rread *next; /* fs->rreads: parked reads, answered at once when the peer stops */
} rread_t;

static void rread_unlink(rread_t *r)
{
    for (rread_t **pp = (rread_t **)&r->fs->rreads; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            return;
        }
    }
}

void fs__remote_reads_abort(fs_t *fs)
{
    for (rread_t *r = fs->rreads; r; r = r->next) {
        if (!r->done) {
            r->done = true;
            fuse_reply_err(r->req, EINTR);
        }
    }
}

typedef struct rwait {
    rread_t *r;
    size_t bi; /* the block's index in the file */
} rwait_t;

/* Block bi's length in file f. */
static uint32_t block_len(uint32_t bs, const manifest_file_t *f, size_t bi)
{
    return (uint32_t)((uint64_t)(bi + 1) * bs <= f->size ? bs : f->size - (uint64_t)bi * bs);
}

/*
 * Answers r: one iovec per block, pointing into the verified bytes held in memory (no copy here:
 * the kernel copies them into the page cache), or into one buffer filled from the store for
 * blocks that were there already. Only bytes whose hash was checked are ever pointed at.
 */
static void rread_reply(rread_t *r)
{
    job_t *j = r->job;
    const manifest_file_t *f = r->f;
    uint32_t bs = r->bs;
    struct iovec *iov = xcalloc(r->nb, sizeof(*iov));
    char *sbuf = NULL; /* the parts read from the store, one after another */
    size_t sused = 0, n = 0;
    uint64_t end = (uint64_t)r->off + r->size;
    for (size_t k = 0; k < r->nb; k++) {
        uint64_t bstart = (uint64_t)(r->b0 + k) * bs;
        uint64_t from = bstart > (uint64_t)r->off ? bstart : (uint64_t)r->off;
        uint64_t to = bstart + bs < end ? bstart + bs : end;
        size_t want = (size_t)(to - from);
        if (r->data[k]) {
            const uint8_t *p = r->data[k] + (from - bstart);
            iov[n++] = (struct iovec){.iov_base = (void *)(uintptr_t)p, .iov_len = want};
            continue;
        }
        if (!sbuf)
            sbuf = xmalloc(r->size);
        ssize_t got = store_read(r->fs->store, &f->blocks[r->b0 + k], sbuf + sused, want, from - bstart);
        if (got < 0 || (size_t)got != want) {
            log_error("job %s: %s: a fetched block is unreadable in the store", j->name, f->path);
            fuse_reply_err(r->req, EIO);
            goto out;
        }
        iov[n++] = (struct iovec){.iov_base = sbuf + sused, .iov_len = want};
        sused += want;
    }
    fuse_reply_iov(r->req, iov, (int)n);
out:
    free(sbuf);
    free(iov);
}

static void rread_finish(rread_t *r)
{
    rread_unlink(r);
    if (!r->done) {
        r->done = true;
        if (r->status)
            fuse_reply_err(r->req, EIO);
        else
            rread_reply(r);
    }
    for (size_t k = 0; k < r->nb; k++)
        fetch_data_release(r->data[k]);
    fs__job_unref(r->job);
    free(r->data);
    free(r);
}

static void on_block(const hash_t *h, int status, const uint8_t *data, size_t len, void *arg)
{
    rwait_t *w = arg;
    rread_t *r = w->r;
    size_t bi = w->bi;
    (void)len;
    free(w);
    if (status && !r->status) {
        char hex[HASH_HEX_LEN + 1];
        hash_to_hex(h, hex);
        log_error("job %s: block %s could not be fetched from any of %zu peers: %s", r->job->name, hex,
                  r->job->n_peers, strerror(-status));
        r->status = status;
    }
    if (!status && data && !r->data[bi - r->b0]) {
        fetch_data_hold(data);
        r->data[bi - r->b0] = data;
    }
    if (--r->missing == 0)
        rread_finish(r);
}

static void on_read_interrupt(fuse_req_t req, void *data)
{
    rread_t *r = data;
    if (!r->done) {
        r->done = true;
        fuse_reply_err(req, EINTR);
    }
}

/* Fetches block bi for r (its bytes handed over in memory), or for read-ahead if r is NULL. */
static int want_block(fs_t *fs, job_t *j, const manifest_file_t *f, uint32_t bs, size_t bi, rread_t *r)
{
    const char *const *peers = (const char *const *)j->peers;
    if (!r) /* read-ahead: nobody waits; the fetcher keeps the verified bytes in memory for a while */
        return fetch_prefetch(fs->fetch, &f->blocks[bi], block_len(bs, f, bi), peers, j->n_peers);
    rwait_t *w = xcalloc(1, sizeof(*w));
    w->r = r;
    w->bi = bi;
    int rc = fetch_block_data(fs->fetch, &f->blocks[bi], block_len(bs, f, bi), peers, j->n_peers, on_block, w);
    if (rc)
        free(w);
    return rc;
}

/*
 * Read-ahead: the blocks after a read are asked for too, so a sequential reader finds them in
 * memory. The mark of the file (by inode number, never reused) remembers the stream: how far
 * read-ahead went (each block is asked for once, instead of looking the whole window up in the
 * store again at every read) and how wide the window is. A read that goes on where the previous
 * one ended doubles the window (up to FS_READAHEAD_MAX: 8 MiB ahead, which keeps the transfers to
 * the peers busy while the reader's FUSE requests wait); any other read starts it again at
 * FS_READAHEAD_MIN, so random reads do not pull megabytes each.
 */
static void read_ahead(fs_t *fs, node_t *n, const manifest_file_t *f, uint32_t bs, size_t b0, size_t b1)
{
    job_t *j = n->job;
    fs_ra_mark_t *m = NULL;
    for (size_t i = 0; i < FS_RA_STREAMS && !m; i++)
        if (fs->ra[i].ino == n->ino)
            m = &fs->ra[i];
    if (!m) {
        m = &fs->ra[fs->ra_next];
        fs->ra_next = (fs->ra_next + 1) % FS_RA_STREAMS;
        *m = (fs_ra_mark_t){.ino = n->ino, .window = FS_READAHEAD_MIN};
    } else if (b0 == m->last || b0 == m->last + 1) {
        m->window = m->window * 2 < FS_READAHEAD_MAX ? m->window * 2 : FS_READAHEAD_MAX;
    } else {
        m->window = FS_READAHEAD_MIN;
    }
    m->last = b1;
    if (b1 + 1 >= f->n_blocks)
        return;
    size_t last = b1 + m->window < f->n_blocks ? b1 + m->window : f->n_blocks - 1;
    size_t first = b1 + 1;
    if (m->next > first && m->next <= last + 1)
        first = m->next; /* the stream goes on: only the new end of the window */
    for (size_t bi = first; bi <= last; bi++)
        if (!store_has(fs->store, &f->blocks[bi]))
            want_block(fs, j, f, bs, bi, NULL);
    m->next = last + 1;
}

void fs__remote_read(fuse_req_t req, fs_t *fs, node_t *n, size_t size, off_t off)
{
    job_t *j = n->job;
    uint32_t bs;
    const manifest_file_t *f = fs__node_mfile(n, &bs);
    if (off < 0 || (uint64_t)off >= f->size || size == 0)
        return (void)fuse_reply_buf(req, NULL, 0);
    if ((uint64_t)off + size > f->size)
        size = (size_t)(f->size - (uint64_t)off);
    size_t b0 = (size_t)((uint64_t)off / bs), b1 = (size_t)(((uint64_t)off + size - 1) / bs);
    rread_t *r = xcalloc(1, sizeof(*r));
    *r = (rread_t){.req = req, .fs = fs, .job = j, .f = f, .bs = bs, .size = size, .off = off,
                   .b0 = b0, .nb = b1 - b0 + 1};
    r->data = xcalloc(r->nb, sizeof(*r->data));
    fs__job_ref(j);
    r->missing = 1; /* held until every fetch is started */
    for (size_t bi = b0; bi <= b1; bi++) {
        size_t len;
        /* in memory (read ahead, or being written to the store), else in the store, else fetched */
        if ((r->data[bi - b0] = fetch_peek(fs->fetch, &f->blocks[bi], &len)) != NULL)
            continue;
        if (store_has(fs->store, &f->blocks[bi]))
            continue;
        r->missing++;
        if (want_block(fs, j, f, bs, bi, r) != 0) {
            r->missing--;
            r->status = -EIO;
        }
    }
    read_ahead(fs, n, f, bs, b0, b1);
    if (r->missing > 1) {
        r->next = fs->rreads;
        fs->rreads = r;
        fuse_req_interrupt_func(req, on_read_interrupt, r);
    }
    if (--r->missing == 0)
        rread_finish(r);
}
