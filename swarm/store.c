/*
 * store.c: the content-addressed block store, one file per verified block.
 *
 * A block lives at DIR/blocks/<first 2 hex>/<64 hex>. A put writes the bytes to a fresh mkstemp
 * file in DIR/tmp/ and then renames it into place with RENAME_NOREPLACE, so a name under blocks/
 * only ever appears with complete, verified content, and of two threads racing to store the same
 * block exactly one wins the rename and counts it. Readers never take a lock: the file system is
 * the index. The byte and block counters are atomics, rebuilt by walking blocks/ in store_open
 * (which also deletes whatever a killed process left in tmp/). Paths under the store are opened
 * relative to a directory fd, so the hot read path formats names into a stack buffer and does
 * not allocate.
 *
 * The index of use: an in-memory hash table, block hash -> (size, last use), under a mutex, filled
 * by store_open from the files (their mtimes give the first order) and kept by every put, has,
 * open, read and remove. It answers store_has without a system call, and store_evict removes the
 * least recently used blocks first (CernVM-FS's policy). An eviction is one unlink of a complete
 * file, so it is crash safe as a put is: the file system stays the truth, the index is rebuilt from
 * it at open. A block that was used within the caller's grace period is never evicted, so a reader
 * that found it (store_has) a moment ago still reads it; one already open stays readable whatever
 * happens to its name (POSIX unlink semantics).
 *
 * What the store does not do: decide what must stay (the caller's pinned callback says), and any
 * re-verification on read (the swarm layer hashes what it serves or fetches).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "swarm/store.h"

/* "blocks/ab/" + 64 hex + NUL */
#define STORE_REL_LEN (sizeof("blocks/") - 1 + 3 + HASH_HEX_LEN + 1)

struct store {
    int dirfd;        /**< DIR, O_DIRECTORY */
    char *tmp_dir;    /**< absolute DIR/tmp, for mkstemp templates */
    /*
     * Running totals. Unsigned arithmetic is modular, so a remove that decrements before the
     * racing put that created the file has incremented leaves the final value right; a reader
     * may see a transient wrap in that window only.
     */
    _Atomic uint64_t bytes;
    _Atomic uint64_t blocks;
    _Atomic uint64_t hits, evictions, evicted_bytes;
    /* the index of use (see the top of the file) */
    pthread_mutex_t mu;
    struct sent *tab; /* open addressing, linear probing, power-of-two capacity; cap 0: none yet */
    size_t cap, used, tombs;
};

/* One block in the index. state: 0 empty, 1 a block, 2 a tombstone (a removed block). */
typedef struct sent {
    hash_t h;
    uint32_t size;
    uint8_t state;
    uint64_t last_ms; /* wall clock, ms: the block's last put, has, open or read */
} sent_t;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t slot_of(const hash_t *h, size_t cap)
{
    uint64_t v;
    memcpy(&v, h->b, sizeof(v)); /* a SHA-256 is uniform already */
    return (size_t)v & (cap - 1);
}

/* The entry of h (mu held), or NULL. */
static sent_t *idx_find(store_t *s, const hash_t *h)
{
    if (!s->cap)
        return NULL;
    for (size_t i = slot_of(h, s->cap), k = 0; k < s->cap; i = (i + 1) & (s->cap - 1), k++) {
        sent_t *e = &s->tab[i];
        if (e->state == 0)
            return NULL;
        if (e->state == 1 && hash_equal(&e->h, h))
            return e;
    }
    return NULL;
}

static void idx_insert_raw(sent_t *tab, size_t cap, const sent_t *src)
{
    for (size_t i = slot_of(&src->h, cap);; i = (i + 1) & (cap - 1))
        if (tab[i].state != 1) {
            tab[i] = *src;
            tab[i].state = 1;
            return;
        }
}

/* Adds h (mu held) or, if there, refreshes its use. */
static void idx_put(store_t *s, const hash_t *h, uint32_t size, uint64_t last_ms)
{
    sent_t *e = idx_find(s, h);
    if (e) {
        if (last_ms > e->last_ms)
            e->last_ms = last_ms;
        return;
    }
    if ((s->used + s->tombs + 1) * 10 > s->cap * 7) { /* over 70%: grow (or just sweep the tombstones) */
        size_t cap = s->cap ? s->cap : 1024;
        while ((s->used + 1) * 10 > cap * 5)
            cap *= 2;
        sent_t *tab = xcalloc(cap, sizeof(*tab));
        for (size_t i = 0; i < s->cap; i++)
            if (s->tab[i].state == 1)
                idx_insert_raw(tab, cap, &s->tab[i]);
        free(s->tab);
        s->tab = tab;
        s->cap = cap;
        s->tombs = 0;
    }
    sent_t n = {.h = *h, .size = size, .last_ms = last_ms};
    idx_insert_raw(s->tab, s->cap, &n);
    s->used++;
}

static void idx_del(store_t *s, const hash_t *h)
{
    sent_t *e = idx_find(s, h);
    if (e) {
        e->state = 2;
        s->used--;
        s->tombs++;
    }
}

/* Refreshes h's use; true if the index has it. */
static bool idx_touch(store_t *s, const hash_t *h)
{
    pthread_mutex_lock(&s->mu);
    sent_t *e = idx_find(s, h);
    if (e)
        e->last_ms = now_ms();
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

static void block_relpath(const hash_t *h, char out[STORE_REL_LEN])
{
    char hex[HASH_HEX_LEN + 1];
    hash_to_hex(h, hex);
    snprintf(out, STORE_REL_LEN, "blocks/%.2s/%s", hex, hex);
}

static int mkdir_p(const char *path, mode_t mode)
{
    char *p = xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/' || s[-1] == '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST) {
            rc = -errno;
            goto error;
        }
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        rc = -errno;
error:
    free(p);
    return rc;
}

/* Deletes every entry of DIR/tmp/: only files that a put never renamed can be there. */
static int clean_tmp(store_t *s)
{
    int fd = openat(s->dirfd, "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
            log_warn("store: cannot remove leftover %s/%s: %s", s->tmp_dir, e->d_name, strerror(errno));
    }
    closedir(d);
    return 0;
}

static bool is_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

/* Adds up one DIR/blocks/<xx>/ directory. Names that are not a block's are left alone, uncounted. */
static int count_subdir(store_t *s, int blocksfd, const char *sub)
{
    int fd = openat(blocksfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != HASH_HEX_LEN || !is_hex(e->d_name, HASH_HEX_LEN) ||
            memcmp(e->d_name, sub, 2) != 0)
            continue;
        struct stat st;
        hash_t h;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
            hash_from_hex(e->d_name, HASH_HEX_LEN, &h) != 0 || st.st_size > STORE_MAX_BLOCK)
            continue;
        atomic_fetch_add(&s->bytes, (uint64_t)st.st_size);
        atomic_fetch_add(&s->blocks, 1);
        /* the last use before this run: the later of the put (mtime) and the last read (atime) */
        uint64_t m = (uint64_t)st.st_mtim.tv_sec * 1000u + (uint64_t)st.st_mtim.tv_nsec / 1000000u;
        uint64_t a = (uint64_t)st.st_atim.tv_sec * 1000u + (uint64_t)st.st_atim.tv_nsec / 1000000u;
        pthread_mutex_lock(&s->mu);
        idx_put(s, &h, (uint32_t)st.st_size, a > m ? a : m);
        pthread_mutex_unlock(&s->mu);
    }
    closedir(d);
    return 0;
}

static int count_blocks(store_t *s)
{
    int fd = openat(s->dirfd, "blocks", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strlen(e->d_name) != 2 || !is_hex(e->d_name, 2))
            continue;
        rc = count_subdir(s, dirfd(d), e->d_name);
        if (rc < 0)
            break;
    }
    closedir(d);
    return rc;
}

int store_open(const char *dir, store_t **out)
{
    store_t *s = NULL;
    char *blocks = NULL, *root = NULL;
    int rc;

    *out = NULL;
    if (!dir || !*dir)
        return -EINVAL;
    s = xcalloc(1, sizeof(*s));
    s->dirfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    blocks = xasprintf("%s/blocks", dir);
    if ((rc = mkdir_p(blocks, 0700)) < 0)
        goto error;
    /* mkstemp needs a path, not a dirfd: make it absolute so a later chdir cannot break puts. */
    root = realpath(dir, NULL);
    if (!root) {
        rc = -errno;
        goto error;
    }
    s->tmp_dir = xasprintf("%s/tmp", root);
    if (mkdir(s->tmp_dir, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        goto error;
    }
    s->dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rc = -errno;
        goto error;
    }
    if ((rc = clean_tmp(s)) < 0 || (rc = count_blocks(s)) < 0)
        goto error;
    free(blocks);
    free(root);
    *out = s;
    return 0;

error:
    log_error("store: cannot open %s: %s", dir, strerror(-rc));
    free(blocks);
    free(root);
    store_close(s);
    return rc;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->tmp_dir);
    free(s->tab);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Moves tmp to rel unless rel exists. RENAME_NOREPLACE makes "first writer wins" atomic; on a file
 * system without it, link(2) gives the same guarantee (it fails with EEXIST) at the cost of an
 * unlink. Returns 0 if moved, -EEXIST if the block was already there, else -errno.
 */
static int move_into_place(store_t *s, const char *tmp, const char *rel)
{
    if (renameat2(AT_FDCWD, tmp, s->dirfd, rel, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -errno;
    if (linkat(AT_FDCWD, tmp, s->dirfd, rel, 0) < 0)
        return -errno;
    unlink(tmp);
    return 0;
}

/*
 * No fsync here, on purpose. The promise (store.h) is to survive kill -9, and a killed process
 * loses nothing the kernel already holds: the data written before the rename is in the page cache
 * and reaches the disk with the name. An fsync per block would add a disk flush to every block of
 * a publish (thousands of them for a large job) to cover only power loss or a kernel crash, after
 * which a block could be short or zeroed under its name. Such a block cannot pass for good data:
 * every reader of the swarm checks blocks against their hashes, so it is refetched, not believed.
 */
static int put_verified(store_t *s, const hash_t *h, const void *data, size_t len)
{
    char rel[STORE_REL_LEN];
    char *tmp = NULL;
    bool created = false; /* tmp names a file that is ours to unlink on error */
    int fd = -1, rc;

    if (store_has(s, h))
        return 0;
    block_relpath(h, rel);
    tmp = xasprintf("%s/put-XXXXXX", s->tmp_dir);
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        goto error;
    }
    created = true;
    if ((rc = write_all(fd, data, len)) < 0)
        goto error;
    /* Blocks are immutable: read-only files make an accidental overwrite fail loudly. */
    if (fchmod(fd, 0400) < 0) {
        rc = -errno;
        goto error;
    }
    rc = close(fd);
    fd = -1;
    if (rc < 0) {
        rc = -errno;
        goto error;
    }
    /* The fan-out directory is made on first use: 256 mkdirs at open would be as good, but slower. */
    char sub[sizeof("blocks/ab")];
    memcpy(sub, rel, sizeof(sub) - 1);
    sub[sizeof(sub) - 1] = '\0';
    if (mkdirat(s->dirfd, sub, 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        goto error;
    }
    rc = move_into_place(s, tmp, rel);
    if (rc == -EEXIST) { /* another thread stored it first */
        unlink(tmp);
        free(tmp);
        return 0;
    }
    if (rc < 0)
        goto error;
    atomic_fetch_add(&s->bytes, (uint64_t)len);
    atomic_fetch_add(&s->blocks, 1);
    pthread_mutex_lock(&s->mu);
    idx_put(s, h, (uint32_t)len, now_ms());
    pthread_mutex_unlock(&s->mu);
    free(tmp);
    return 0;

error:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    log_warn("store: cannot store block %s: %s", rel, strerror(-rc));
    free(tmp);
    return rc;
}

int store_put(store_t *s, const hash_t *h, const void *data, size_t len)
{
    if (len > STORE_MAX_BLOCK)
        return -EMSGSIZE;
    if (len > 0 && !data)
        return -EINVAL;
    hash_t got;
    hash_sha256(data, len, &got);
    if (!hash_equal(&got, h))
        return -EBADMSG;
    return put_verified(s, h, data, len);
}

int store_put_hashed(store_t *s, const hash_t *h, const void *data, size_t len)
{
    if (len > STORE_MAX_BLOCK)
        return -EMSGSIZE;
    if (len > 0 && !data)
        return -EINVAL;
    return put_verified(s, h, data, len);
}

bool store_has(store_t *s, const hash_t *h) { return idx_touch(s, h); }

int store_open_block(store_t *s, const hash_t *h, int *fd)
{
    char rel[STORE_REL_LEN];
    idx_touch(s, h);
    block_relpath(h, rel);
    *fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        int rc = -errno;
        *fd = -1;
        return rc;
    }
    atomic_fetch_add(&s->hits, 1);
    return 0;
}

ssize_t store_read(store_t *s, const hash_t *h, void *buf, size_t len, uint64_t off)
{
    if (off > (uint64_t)INT64_MAX)
        return -EINVAL;
    if (len > SSIZE_MAX)
        len = SSIZE_MAX;
    int fd;
    int rc = store_open_block(s, h, &fd);
    if (rc < 0)
        return rc;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            close(fd);
            return rc;
        }
        if (n == 0)
            break; /* end of the block */
        done += (size_t)n;
    }
    close(fd);
    return (ssize_t)done;
}

int store_remove(store_t *s, const hash_t *h)
{
    char rel[STORE_REL_LEN];
    struct stat st;
    block_relpath(h, rel);
    if (fstatat(s->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    /*
     * Only the thread whose unlink succeeds counts the removal, so racing removes subtract once.
     * The size cannot change between stat and unlink: a block's name fixes its content.
     */
    pthread_mutex_lock(&s->mu);
    int rc = unlinkat(s->dirfd, rel, 0) < 0 ? -errno : 0;
    if (!rc)
        idx_del(s, h);
    pthread_mutex_unlock(&s->mu);
    if (rc)
        return rc;
    atomic_fetch_sub(&s->bytes, (uint64_t)st.st_size);
    atomic_fetch_sub(&s->blocks, 1);
    return 0;
}

static int cmp_last(const void *a, const void *b)
{
    const sent_t *x = a, *y = b;
    return x->last_ms < y->last_ms ? -1 : x->last_ms > y->last_ms;
}

size_t store_evict(store_t *s, uint64_t target, uint64_t grace_ms, store_pinned_fn pinned, void *arg,
                   uint64_t *freed)
{
    *freed = 0;
    if (atomic_load(&s->bytes) <= target)
        return 0;
    /* A snapshot of the index, oldest use first; each candidate is checked again when it goes. */
    pthread_mutex_lock(&s->mu);
    size_t n = 0;
    sent_t *v = xcalloc(s->used ? s->used : 1, sizeof(*v));
    for (size_t i = 0; i < s->cap; i++)
        if (s->tab[i].state == 1)
            v[n++] = s->tab[i];
    pthread_mutex_unlock(&s->mu);
    qsort(v, n, sizeof(*v), cmp_last);
    size_t removed = 0;
    for (size_t i = 0; i < n && atomic_load(&s->bytes) > target; i++) {
        if (pinned && pinned(arg, &v[i].h))
            continue;
        char rel[STORE_REL_LEN];
        block_relpath(&v[i].h, rel);
        pthread_mutex_lock(&s->mu); /* has() waits meanwhile: it never finds a block going */
        sent_t *e = idx_find(s, &v[i].h);
        bool go = e && e->last_ms + grace_ms <= now_ms();
        if (go && unlinkat(s->dirfd, rel, 0) != 0)
            go = false;
        if (go)
            idx_del(s, &v[i].h);
        pthread_mutex_unlock(&s->mu);
        if (!go)
            continue; /* used within the grace period (maybe just now), or gone already */
        atomic_fetch_sub(&s->bytes, v[i].size);
        atomic_fetch_sub(&s->blocks, 1);
        atomic_fetch_add(&s->evictions, 1);
        atomic_fetch_add(&s->evicted_bytes, v[i].size);
        *freed += v[i].size;
        removed++;
    }
    free(v);
    return removed;
}

void store_stats(store_t *s, store_stats_t *st)
{
    st->bytes = atomic_load(&s->bytes);
    st->blocks = atomic_load(&s->blocks);
    st->hits = atomic_load(&s->hits);
    st->evictions = atomic_load(&s->evictions);
    st->evicted_bytes = atomic_load(&s->evicted_bytes);
}

uint64_t store_bytes(store_t *s)
{
    return atomic_load(&s->bytes);
}

uint64_t store_blocks(store_t *s)
{
    return atomic_load(&s->blocks);
}
