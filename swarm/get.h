/**
 * @file get.h  `preon get`: a plain whole-file (or whole-job) download from the swarm, without a
 * mount or a block store.
 *
 *   preon get --peer URL [--peer URL ...] JOB_ID[/PATH] DEST
 *
 * Fetches the job's manifest from the first peer that has it (accepted only if its SHA-256 is
 * JOB_ID), then every block of the file PATH (or of every file under the directory PATH, or of
 * the whole job) from all the given peers at once through the block fetcher (swarm/fetch.c), each
 * verified against its hash before it is written at its offset. The result appears at DEST under
 * its final name only once every block has arrived verified: until then it is a hidden temporary
 * name next to DEST, removed on failure. Design and figures: docs/fetch.md, docs/performance.md.
 */
#ifndef PREON_SWARM_GET_H
#define PREON_SWARM_GET_H

/**
 * The command: argv[0] is "get". Returns the exit status: 0 if everything arrived verified, 1 on
 * failure (a message on stderr says why), 2 for bad usage.
 */
int get_main(int argc, char **argv);

#endif
