/*
 * read.c: lazy verified reads of other peers' jobs: their inputs and the files of their mirrored
 * results (mirror.c); fs__node_mfile gives either.
 *
 * A read of a remote job's file maps [off, off+size) to blocks; blocks not in the store are fetched
 * through the pool (pool_block_read: from every peer that lists the job, verified before they are
 * stored), plus a read-ahead window; the FUSE request is parked and answered once its blocks are
 * all in, with EIO (and a logged reason) if one cannot be had, or EINTR if the reader is
 * interrupted. Only verified bytes ever reach a reader: a block is answered from memory once its
 * hash matched (pool_block_read, pool_block_peek: the store write goes on in the background), or
 * read from the store, where only verified blocks are ever put.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "fs/internal.h"

/* Read-ahead window in blocks: a new or random reader gets the first, a sequential one doubles it
 * at every read up to the second (the pool's fetcher keeps more blocks than that in memory). */
#define FS_READAHEAD_MIN 4
#define FS_READAHEAD_MAX 32
#define FS_READ_DEADLINE_MS 120000 /* a parked read fails with EIO after this, whatever the fetches do */
#define FS_READ_SWEEP_MS 250       /* how often parked reads are looked at for their deadline */

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
    uint64_t deadline; /* uv_now: past it, the read is answered EIO (its fetches go on for the store) */
    uv_work_t work;    /* the answer is written in the thread pool: the copy into the kernel, store reads */
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

static void timer_free(uv_handle_t *h) { free(h); }

void fs__remote_reads_abort(fs_t *fs)
{
    for (rread_t *r = fs->rreads; r; r = r->next) {
        if (!r->done) {
            r->done = true;
            fuse_reply_err(r->req, EINTR);
        }
    }
    if (fs->read_timer) {
        uv_close((uv_handle_t *)fs->read_timer, timer_free);
        fs->read_timer = NULL;
    }
}

/* Every parked read has an absolute deadline (--read-deadline-ms): the fetcher's own time-outs
 * bound each transfer, this bounds the read, however its blocks are retried. */
static void on_read_sweep(uv_timer_t *t)
{
    fs_t *fs = t->data;
    uint64_t now = uv_now(fs->loop);
    for (rread_t *r = fs->rreads; r; r = r->next) {
        if (r->done || now < r->deadline)
            continue;
        r->done = true;
        log_error("job %s: a read of %s waited %llu ms for its blocks: answered EIO", r->job->name, r->f->path,
                  (unsigned long long)(fs->opts.read_deadline_ms ? fs->opts.read_deadline_ms : FS_READ_DEADLINE_MS));
        pool_job_read_failed(fs->pool, r->job);
        fuse_reply_err(r->req, EIO);
    }
    if (!fs->rreads)
        uv_timer_stop(t);
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
 * Answers r, in the thread pool: one iovec per block, pointing into the verified bytes held in
 * memory (no copy here: the kernel copies them into the page cache, which is most of the time a
 * read costs: off the loop), or into one buffer filled from the store for blocks that were there
 * already (a disk read: off the loop too). Only bytes whose hash was checked are ever pointed at.
 * The held blocks and the job stay held until reply_done, back on the loop.
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
        ssize_t got = pool_block_load(r->fs->pool, &f->blocks[r->b0 + k], sbuf + sused, want, from - bstart);
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

static void rread_free(rread_t *r)
{
    for (size_t k = 0; k < r->nb; k++)
        pool_block_release(r->data[k]);
    pool_job_unref(r->job);
    free(r->data);
    free(r);
}

static void reply_work(uv_work_t *w) { rread_reply(w->data); }

static void reply_done(uv_work_t *w, int status)
{
    rread_t *r = w->data;
    fs_t *fs = r->fs;
    rread_free(r);
    fs->pending_replies--; /* fs_stop waits for 0 */
}

static void rread_finish(rread_t *r)
{
    rread_unlink(r);
    if (!r->done) {
        r->done = true; /* from here on an interrupt does not answer it */
        if (!r->status) {
            r->work.data = r;
            r->fs->pending_replies++;
            uv_queue_work(r->fs->loop, &r->work, reply_work, reply_done);
            return;
        }
        fuse_reply_err(r->req, EIO);
        pool_job_read_failed(r->fs->pool, r->job);
    }
    rread_free(r);
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
        pool_block_hold(data);
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
    if (!r) /* read-ahead: nobody waits; the pool keeps the verified bytes in memory for a while */
        return pool_block_prefetch(fs->pool, j, &f->blocks[bi], block_len(bs, f, bi));
    rwait_t *w = xcalloc(1, sizeof(*w));
    w->r = r;
    w->bi = bi;
    int rc = pool_block_read(fs->pool, j, &f->blocks[bi], block_len(bs, f, bi), on_block, w);
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
        if (!pool_block_has(fs->pool, &f->blocks[bi]))
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
    pool_job_ref(j);
    r->missing = 1; /* held until every fetch is started */
    for (size_t bi = b0; bi <= b1; bi++) {
        size_t len;
        /* in memory (read ahead, or being written to the store), else in the store, else fetched */
        if ((r->data[bi - b0] = pool_block_peek(fs->pool, &f->blocks[bi], &len)) != NULL)
            continue;
        if (pool_block_has(fs->pool, &f->blocks[bi]))
            continue;
        r->missing++;
        if (want_block(fs, j, f, bs, bi, r) != 0) {
            r->missing--;
            r->status = -EIO;
        }
    }
    read_ahead(fs, n, f, bs, b0, b1);
    if (r->missing > 1) {
        r->deadline = uv_now(fs->loop) + (fs->opts.read_deadline_ms ? fs->opts.read_deadline_ms : FS_READ_DEADLINE_MS);
        r->next = fs->rreads;
        fs->rreads = r;
        if (!fs->read_timer) {
            fs->read_timer = xcalloc(1, sizeof(*fs->read_timer));
            uv_timer_init(fs->loop, fs->read_timer);
            fs->read_timer->data = fs;
        }
        if (!uv_is_active((uv_handle_t *)fs->read_timer))
            uv_timer_start(fs->read_timer, on_read_sweep, FS_READ_SWEEP_MS, FS_READ_SWEEP_MS);
        fuse_req_interrupt_func(req, on_read_interrupt, r);
    }
    if (--r->missing == 0)
        rread_finish(r);
}
