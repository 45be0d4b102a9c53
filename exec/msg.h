/**
 * @file msg.h  The messages between preon, a sandbox's keeper and its agent (exec/keeper.c;
 * docs/sandbox.md, "Warm sandboxes"). libc only: linked into preon and into preon-limit.
 *
 * A message is one SOCK_SEQPACKET datagram: a type byte, then zero or more fields, each ended by a
 * NUL byte; file descriptors travel beside it (SCM_RIGHTS, at most EXEC_MSG_MAX_FDS).
 *
 *   'H' hello   keeper -> preon   fields: monitor pid        fd: a pidfd of bwrap's monitor
 *   'Y' ready   agent -> keeper -> preon                      (the sandbox takes tasks)
 *   'R' run     preon -> keeper   fields: upper, work, walk ("0"/"1"), command, env...   fds: stdout, stderr
 *               keeper -> agent   fields: command, env...                                fds: stdout, stderr
 *   'D' done    agent -> keeper -> preon   fields: the command's wait status (decimal)
 *   'F' failed  agent -> keeper -> preon   fields: why the task could not start (it never ran)
 *
 * The agent runs inside the sandbox, beside the task: what it sends is parsed as untrusted input
 * (exec__msg_decode checks every byte; the fuzz target tests/fuzz/fuzz_msg.c).
 */
#ifndef PREON_EXEC_MSG_H
#define PREON_EXEC_MSG_H
#include <stddef.h>
#include <sys/types.h>

#ifndef EXEC_MSG_MAX
#define EXEC_MSG_MAX (128 * 1024) /* a command (64 KiB at most), its environment and two paths */
#endif
#define EXEC_MSG_MAX_FIELDS 64
#define EXEC_MSG_MAX_FDS 2

typedef struct exec_msg {
    char type;
    int nf;
    const char *f[EXEC_MSG_MAX_FIELDS]; /* point into the buffer decoded */
} exec_msg_t;

/**
 * Pure: buf[0] is the type, then nf NUL-terminated fields. The length, or -EMSGSIZE if it would not
 * fit in cap (nothing is promised about buf then), -EINVAL for a field count over the maximum.
 */
int exec__msg_encode(char type, const char *const *fields, int nf, char *buf, size_t cap);
/**
 * Pure: decodes len bytes of buf in place (fields point into buf). 0, or -EPROTO: empty, a type
 * that is not a letter, a last field without its NUL, more than EXEC_MSG_MAX_FIELDS fields.
 */
int exec__msg_decode(char *buf, size_t len, exec_msg_t *m);
/** Pure: a decimal int field ("-5", "0", "256"), nothing else. 0 or -EPROTO. */
int exec__msg_int(const char *s, long long lo, long long hi, long long *out);

/**
 * Sends one message with up to EXEC_MSG_MAX_FDS descriptors (nfds, may be 0): MSG_NOSIGNAL, and
 * MSG_DONTWAIT if nonblock. 0 or -errno (-EAGAIN: the peer's queue is full).
 */
int exec__msg_send(int sock, const char *buf, size_t len, const int *fds, int nfds, int nonblock);
/**
 * Receives one message into buf (cap bytes) and the descriptors that came with it (close-on-exec;
 * *nfds of them, the rest closed). The length; 0 at end of file; -errno (-EAGAIN with nonblock and
 * nothing there; -EMSGSIZE if it was cut short, its descriptors closed).
 */
ssize_t exec__msg_recv(int sock, char *buf, size_t cap, int *fds, int *nfds, int nonblock);

#endif
