/**
 * @file files.h  Directory helpers shared by the peer (fs/) and `preon get` (swarm/get.c).
 */
#ifndef PREON_CORE_FILES_H
#define PREON_CORE_FILES_H
#include <sys/types.h>

/** mkdir -p: path and every missing parent, with mode. 0 or -errno. */
int files_mkdir_p(const char *path, mode_t mode);
/** rm -rf without following symlinks; a missing path is not an error. 0 or the first -errno. */
int files_rm_rf(const char *path);

#endif
