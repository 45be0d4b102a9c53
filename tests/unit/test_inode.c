/* Unit tests of fs/inode.c: the node tree behind FUSE inode numbers (index, detach, rename, paths). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs/internal.h"

static void many_children_are_found_after_adds_and_removals(void **state)
{
    (void)state;
    fs_t fs = {0};
    node_t *root = fs__node_new(&fs, NULL, "", N_ROOT, NULL);
    enum { N = 5000 };
    node_t *kids[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        kids[i] = fs__node_new(&fs, root, name, N_STAGE, NULL);
    }
    assert_int_equal(root->nkids, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        assert_ptr_equal(fs__node_child(root, name), kids[i]);
    }
    assert_null(fs__node_child(root, "missing"));
    for (int i = 0; i < N; i += 2) /* nlookup 0: freed at once */
        fs__node_detach(&fs, kids[i]);
    assert_int_equal(root->nkids, N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "f%d", i);
        if (i % 2)
            assert_ptr_equal(fs__node_child(root, name), kids[i]);
        else
            assert_null(fs__node_child(root, name));
    }
    for (size_t i = 0; i < root->nkids; i++) /* positions stay consistent after swap-removal */
        assert_int_equal(root->kids[i]->kidpos, i);
    fs__nodes_free(&fs);
}

static void inode_numbers_are_never_reused(void **state)
{
    (void)state;
    fs_t fs = {0};
    node_t *root = fs__node_new(&fs, NULL, "", N_ROOT, NULL);
    node_t *a = fs__node_new(&fs, root, "a", N_STAGE, NULL);
    fuse_ino_t ino = a->ino;
    a->nlookup = 2;
    fs__node_detach(&fs, a);
    assert_ptr_equal(fs__node_get(&fs, ino), a); /* the kernel still holds it */
    assert_null(fs__node_child(root, "a"));
    fs__node_forget(&fs, a, 1);
    assert_ptr_equal(fs__node_get(&fs, ino), a);
    fs__node_forget(&fs, a, 5); /* more than held: clamps to zero, frees */
    assert_null(fs__node_get(&fs, ino));
    node_t *b = fs__node_new(&fs, root, "a", N_STAGE, NULL);
    assert_true(b->ino > ino);
    assert_null(fs__node_get(&fs, 999999));
    fs__nodes_free(&fs);
}

static void rename_moves_between_directories_and_paths_follow(void **state)
{
    (void)state;
    fs_t fs = {0};
    node_t *root = fs__node_new(&fs, NULL, "", N_ROOT, NULL);
    node_t *jobs = fs__node_new(&fs, root, "jobs", N_JOBS, NULL);
    node_t *job = fs__node_new(&fs, jobs, "mandel", N_STAGE, NULL);
    node_t *d1 = fs__node_new(&fs, job, "in", N_STAGE, NULL);
    node_t *d2 = fs__node_new(&fs, job, "out", N_STAGE, NULL);
    node_t *f = fs__node_new(&fs, d1, "data.bin", N_STAGE, NULL);
    char *p = fs__node_relpath(f);
    assert_string_equal(p, "in/data.bin");
    free(p);
    p = fs__node_relpath(job);
    assert_string_equal(p, "");
    free(p);
    fs__node_rename(f, d2, "renamed.bin");
    assert_null(fs__node_child(d1, "data.bin"));
    assert_ptr_equal(fs__node_child(d2, "renamed.bin"), f);
    p = fs__node_relpath(f);
    assert_string_equal(p, "out/renamed.bin");
    free(p);
    fs__nodes_free(&fs);
}

/* A directory the kernel still holds after it was detached can get children (a live output
 * directory: fs/live.c makes its stdout and stderr on a lookup in it); once it is forgotten they go
 * with it: freed if the kernel holds none, else detached (no parent left dangling). */
static void children_made_under_a_detached_directory_go_with_it(void **state)
{
    (void)state;
    fs_t fs = {0};
    node_t *root = fs__node_new(&fs, NULL, "", N_ROOT, NULL);
    node_t *d = fs__node_new(&fs, root, "3", N_STAGE, NULL);
    d->nlookup = 1;
    fs__node_detach(&fs, d);
    node_t *held = fs__node_new(&fs, d, "stdout", N_STAGE, NULL);
    node_t *listed = fs__node_new(&fs, d, "stderr", N_STAGE, NULL); /* nlookup 0: made by a listing */
    fuse_ino_t held_ino = held->ino, listed_ino = listed->ino, d_ino = d->ino;
    held->nlookup = 1;
    fs__node_forget(&fs, d, 1);
    assert_null(fs__node_get(&fs, d_ino));
    assert_null(fs__node_get(&fs, listed_ino));
    assert_ptr_equal(fs__node_get(&fs, held_ino), held);
    assert_true(held->detached);
    assert_null(held->parent);
    fs__node_forget(&fs, held, 1);
    assert_null(fs__node_get(&fs, held_ino));
    assert_int_equal(root->nkids, 0);
    fs__nodes_free(&fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_children_are_found_after_adds_and_removals),
        cmocka_unit_test(inode_numbers_are_never_reused),
        cmocka_unit_test(rename_moves_between_directories_and_paths_follow),
        cmocka_unit_test(children_made_under_a_detached_directory_go_with_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
