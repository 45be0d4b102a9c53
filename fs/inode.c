/*
 * inode.c: the node tree behind the FUSE inode numbers.
 *
 * Inode numbers index fs->nodes and are never reused (a freed slot stays NULL), so a stale number
 * from the kernel can never name a different node: lookups of it fail with ENOENT. The array grows
 * by doubling; a peer that sees a billion lookups would want reuse with generation numbers.
 * A directory's children are an array; past INDEX_MIN of them a hash index by name keeps lookup,
 * create and unlink O(1), so copying or publishing a directory of 100k files stays linear.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "fs/internal.h"

#define INDEX_MIN 32

static size_t name_hash(const char *s)
{
    size_t h = 14695981039346656037ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void index_insert(node_t *dir, node_t *n)
{
    size_t mask = dir->index_cap - 1, i = name_hash(n->name) & mask;
    while (dir->index[i])
        i = (i + 1) & mask;
    dir->index[i] = n;
}

static void index_rebuild(node_t *dir, size_t cap)
{
    free(dir->index);
    dir->index_cap = cap;
    dir->index = xcalloc(cap, sizeof(node_t *));
    for (size_t i = 0; i < dir->nkids; i++)
        index_insert(dir, dir->kids[i]);
}

/* Removes n from dir's index by backward-shift deletion (no tombstones). */
static void index_remove(node_t *dir, node_t *n)
{
    size_t mask = dir->index_cap - 1, i = name_hash(n->name) & mask;
    while (dir->index[i] && dir->index[i] != n)
        i = (i + 1) & mask;
    if (!dir->index[i])
        return;
    dir->index[i] = NULL;
    for (size_t j = (i + 1) & mask; dir->index[j]; j = (j + 1) & mask) {
        node_t *m = dir->index[j];
        dir->index[j] = NULL;
        index_insert(dir, m);
    }
}

static void kid_add(node_t *dir, node_t *n)
{
    if (dir->nkids == dir->capkids) {
        dir->capkids = dir->capkids ? dir->capkids * 2 : 8;
        dir->kids = xreallocarray(dir->kids, dir->capkids, sizeof(*dir->kids));
    }
    n->kidpos = dir->nkids;
    dir->kids[dir->nkids++] = n;
    n->parent = dir;
    if (dir->index_cap >= 2 * dir->nkids)
        index_insert(dir, n);
    else if (dir->nkids >= INDEX_MIN)
        index_rebuild(dir, dir->index_cap ? dir->index_cap * 2 : 4 * INDEX_MIN);
}

node_t *fs__node_new(fs_t *fs, node_t *parent, const char *name, node_kind_t kind, job_t *job)
{
    node_t *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->name = xstrdup(name);
    n->job = job;
    n->file = -1;
    if (fs->nnodes == fs->capnodes) {
        fs->capnodes = fs->capnodes ? fs->capnodes * 2 : 1024;
        fs->nodes = xreallocarray(fs->nodes, fs->capnodes, sizeof(*fs->nodes));
    }
    if (fs->nnodes == 0)
        fs->nodes[fs->nnodes++] = NULL; /* inode 0 is invalid */
    n->ino = fs->nnodes;
    fs->nodes[fs->nnodes++] = n;
    if (parent)
        kid_add(parent, n);
    return n;
}

node_t *fs__node_live(fs_t *fs, fuse_ino_t ino)
{
    node_t *n = fs__node_get(fs, ino);
    /* its job may be gone: nothing to reach through it (a live output node holds its job) */
    return n && n->detached && n->job && n->kind != N_LIVE_DIR && n->kind != N_LIVE_FILE ? NULL : n;
}

node_t *fs__node_get(fs_t *fs, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return fs->root;
    if (ino >= fs->nnodes)
        return NULL;
    return fs->nodes[ino];
}

node_t *fs__node_child(node_t *dir, const char *name)
{
    if (dir->index_cap) {
        size_t mask = dir->index_cap - 1;
        for (size_t i = name_hash(name) & mask; dir->index[i]; i = (i + 1) & mask)
            if (strcmp(dir->index[i]->name, name) == 0)
                return dir->index[i];
        return NULL;
    }
    for (size_t i = 0; i < dir->nkids; i++)
        if (strcmp(dir->kids[i]->name, name) == 0)
            return dir->kids[i];
    return NULL;
}

static void unlink_from_parent(node_t *n)
{
    node_t *p = n->parent;
    if (!p)
        return;
    if (p->index_cap)
        index_remove(p, n);
    p->kids[n->kidpos] = p->kids[--p->nkids];
    p->kids[n->kidpos]->kidpos = n->kidpos;
    n->parent = NULL;
}

/* A live output node's part (fs/live.c): the copy of its readers' fd, if any. */
static void live_free(fs_live_t *l)
{
    if (l && l->fd >= 0)
        close(l->fd);
    free(l);
}

static void node_free(fs_t *fs, node_t *n)
{
    /* Children made under n once it was detached (a lookup or a listing in a live output directory
     * the kernel still held: fs/live.c) go with it, as fs__node_detach's do: none is left pointing
     * at a freed parent, nor kept (with its job's hold) until the unmount. */
    while (n->nkids > 0)
        fs__node_detach(fs, n->kids[n->nkids - 1]);
    if (n->kind == N_LIVE_DIR || n->kind == N_LIVE_FILE) {
        pool_job_unref(n->job); /* held since fs__live_dir / fs__live_file made it */
        live_free(n->live);
    }
    fs->nodes[n->ino] = NULL;
    free(n->index);
    free(n->kids);
    free(n->name);
    free(n);
}

void fs__node_detach(fs_t *fs, node_t *n)
{
    unlink_from_parent(n);
    n->detached = true;
    /* Children go with their parent: the kernel may still hold some of them. */
    while (n->nkids > 0)
        fs__node_detach(fs, n->kids[n->nkids - 1]);
    if (n->nlookup == 0)
        node_free(fs, n);
}

void fs__node_rename(node_t *n, node_t *newparent, const char *newname)
{
    unlink_from_parent(n);
    free(n->name);
    n->name = xstrdup(newname);
    kid_add(newparent, n);
}

void fs__node_forget(fs_t *fs, node_t *n, uint64_t nlookup)
{
    n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
    if (n->nlookup == 0 && n->detached)
        node_free(fs, n);
}

void fs__nodes_free(fs_t *fs)
{
    /* The pool is gone already, its jobs with it: the live nodes' holds are not given back. */
    for (size_t i = 0; i < fs->nnodes; i++) {
        if (fs->nodes[i]) {
            live_free(fs->nodes[i]->live);
            free(fs->nodes[i]->index);
            free(fs->nodes[i]->kids);
            free(fs->nodes[i]->name);
            free(fs->nodes[i]);
        }
    }
    free(fs->nodes);
    fs->nodes = NULL;
    fs->nnodes = fs->capnodes = 0;
}

/* Walks up to the job's root node (the child of jobs/ or results/). */
static const node_t *job_root(const node_t *n)
{
    while (n->parent && n->parent->kind != N_JOBS && n->parent->kind != N_RESULTS)
        n = n->parent;
    return n;
}

char *fs__node_relpath(const node_t *n)
{
    const node_t *root = job_root(n);
    size_t len = 0;
    for (const node_t *p = n; p != root && p; p = p->parent)
        len += strlen(p->name) + 1;
    char *out = xmalloc(len + 1);
    out[len] = '\0';
    size_t pos = len;
    for (const node_t *p = n; p != root && p; p = p->parent) {
        size_t l = strlen(p->name);
        pos -= l;
        memcpy(out + pos, p->name, l);
        if (pos > 0)
            out[--pos] = '/';
    }
    if (len > 0) { /* drop the leading slash the loop leaves when the path is not empty */
        memmove(out, out + 1, len);
    }
    return out;
}

char *fs__node_backing(fs_t *fs, const node_t *n)
{
    char *rel = fs__node_relpath(n);
    char *out;
    if (n->kind == N_RES)
        out = xasprintf("%s/results/%s%s%s", fs->data_dir, n->job->id, *rel ? "/" : "", rel);
    else
        out = xasprintf("%s/staging/%s%s%s", fs->data_dir, n->job->name, *rel ? "/" : "", rel);
    free(rel);
    return out;
}

const manifest_file_t *fs__node_mfile(const node_t *n, uint32_t *block_size)
{
    const manifest_t *m = n->kind == N_RRES_FILE ? &n->res->man : &n->job->man;
    *block_size = m->block_size;
    return &m->files[n->file];
}
