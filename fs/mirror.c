/*
 * mirror.c: the results of another peer's job, as nodes. The pool mirrors the submitter's result
 * manifests (pool/results.c); each one here becomes results/<name>/<task>/... nodes whose reads
 * fetch, verify and keep blocks exactly like a remote job's inputs (read.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "fs/internal.h"

/* The node at path under dir (its directories made as needed). */
static node_t *mirror_node(fs_t *fs, node_t *dir, const char *path, node_kind_t kind, job_t *j, taskres_t *tr)
{
    char *p = xstrdup(path);
    node_t *cur = dir;
    char *save = NULL;
    for (char *tok = strtok_r(p, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        bool last = save == NULL || *save == '\0';
        node_t *n = fs__node_child(cur, tok);
        if (!n) {
            n = fs__node_new(fs, cur, tok, last ? kind : N_RRES_DIR, j);
            n->res = tr;
        }
        cur = n;
    }
    free(p);
    return cur;
}

void fs__mirror_add(fs_t *fs, job_t *j, taskres_t *tr)
{
    node_t *results = V(j) ? V(j)->results : NULL;
    if (!results)
        return;
    char name[16];
    snprintf(name, sizeof(name), "%u", tr->task);
    node_t *top = fs__node_child(results, name);
    if (top) /* left over from a result refused earlier: start afresh */
        fs__node_detach(fs, top);
    top = fs__node_new(fs, results, name, N_RRES_DIR, j);
    top->res = tr;
    for (size_t i = 0; i < tr->man.n_dirs; i++)
        mirror_node(fs, top, tr->man.dirs[i], N_RRES_DIR, j, tr);
    for (size_t i = 0; i < tr->man.n_files; i++)
        mirror_node(fs, top, tr->man.files[i].path, N_RRES_FILE, j, tr)->file = (int32_t)i;
}
