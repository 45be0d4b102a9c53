/*
 * msg.c: the codec of the messages between preon, a sandbox's keeper and its agent (msg.h), and the
 * send and receive of one datagram with its descriptors. libc only, no allocation: the keeper and
 * the agent (preon-limit) link it, so it must not need preon's libraries.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exec/msg.h"

int exec__msg_encode(char type, const char *const *fields, int nf, char *buf, size_t cap)
{
    if (nf < 0 || nf > EXEC_MSG_MAX_FIELDS)
        return -EINVAL;
    if (cap < 1 || cap > INT_MAX)
        return -EMSGSIZE;
    size_t off = 0;
    buf[off++] = type;
    for (int i = 0; i < nf; i++) {
        size_t l = strlen(fields[i]);
        if (l + 1 > cap - off)
            return -EMSGSIZE;
        memcpy(buf + off, fields[i], l + 1);
        off += l + 1;
    }
    return (int)off;
}

int exec__msg_decode(char *buf, size_t len, exec_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    if (len < 1 || len > EXEC_MSG_MAX)
        return -EPROTO;
    char t = buf[0];
    if (!((t >= 'A' && t <= 'Z') || (t >= 'a' && t <= 'z')))
        return -EPROTO;
    m->type = t;
    size_t off = 1;
    while (off < len) {
        char *nul = memchr(buf + off, '\0', len - off);
        if (!nul || m->nf == EXEC_MSG_MAX_FIELDS)
            return -EPROTO;
        m->f[m->nf++] = buf + off;
        off = (size_t)(nul - buf) + 1;
    }
    return 0;
}

int exec__msg_int(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return -EPROTO;
    const char *p = s[0] == '-' ? s + 1 : s;
    if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 18)
        return -EPROTO;
    long long v = strtoll(s, NULL, 10);
    if (v < lo || v > hi)
        return -EPROTO;
    *out = v;
    return 0;
}

int exec__msg_send(int sock, const char *buf, size_t len, const int *fds, int nfds, int nonblock)
{
    if (nfds < 0 || nfds > EXEC_MSG_MAX_FDS)
        return -EINVAL;
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        char b[CMSG_SPACE(EXEC_MSG_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        mh.msg_control = ctl.b;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t n;
    do
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | (nonblock ? MSG_DONTWAIT : 0));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return (size_t)n == len ? 0 : -EIO;
}

ssize_t exec__msg_recv(int sock, char *buf, size_t cap, int *fds, int *nfds, int nonblock)
{
    *nfds = 0;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    union {
        char b[CMSG_SPACE(8 * sizeof(int))]; /* room for more than we take: the extras are closed */
        struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    ssize_t n;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (nonblock ? MSG_DONTWAIT : 0));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (got < EXEC_MSG_MAX_FDS)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        for (int i = 0; i < got; i++)
            close(fds[i]);
        return -EMSGSIZE;
    }
    *nfds = got;
    return n;
}
