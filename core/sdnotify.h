/**
 * @file sdnotify.h  Tells systemd how a service is doing (the sd_notify protocol, without libsystemd).
 *
 * systemd gives a Type=notify service the address of a datagram socket in $NOTIFY_SOCKET (a path, or
 * an abstract name written with a leading '@'); the service sends "READY=1" once it works and
 * "STOPPING=1" when it begins to stop (systemd's sd_notify(3) documents the messages).
 */
#ifndef PREON_CORE_SDNOTIFY_H
#define PREON_CORE_SDNOTIFY_H

/** Sends state (e.g. "READY=1") to $NOTIFY_SOCKET without blocking. 0 if it was sent or there is no
 *  $NOTIFY_SOCKET (not run by systemd), -errno if it could not be sent (-EINVAL: a bad address). */
int sdnotify(const char *state);

#endif
