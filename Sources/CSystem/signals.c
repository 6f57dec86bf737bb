/* The signal trap's handler: only async-signal-safe calls (write), errno preserved. */
#include "CSystem.h"
#include <string.h>

static volatile sig_atomic_t trap_fd = -1;

static void nas_trap_handler(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    int fd = trap_fd;
    if (fd >= 0) {
        /* A full pipe drops the byte: the reader is then hundreds of signals behind, and counts are only compared
         * with small numbers. */
        ssize_t ignored = write(fd, &byte, 1);
        (void)ignored;
    }
    errno = saved;
}

int nas_signal_unblock(int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL) == 0 ? 0 : -1;
}

int nas_signal_trap(int signo, int fd) {
    trap_fd = fd;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = nas_trap_handler;
    sigemptyset(&action.sa_mask);
    /* Interrupted calls resume instead of failing with EINTR in code that never expected a signal. */
    action.sa_flags = SA_RESTART;
    if (sigaction(signo, &action, NULL) < 0) return -1;
    return nas_signal_unblock(signo);
}

int nas_signal_default(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int nas_signal_ignore(int signo) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_IGN;
    sigemptyset(&action.sa_mask);
    return sigaction(signo, &action, NULL);
}

int nas_signal_disposition(int signo) {
    struct sigaction action;
    if (sigaction(signo, NULL, &action) < 0) return -1;
    if (action.sa_handler == SIG_DFL) return 0;
    if (action.sa_handler == SIG_IGN) return 1;
    return 2;
}

int nas_signal_unblock_all(void) {
    sigset_t set;
    sigemptyset(&set);
    return pthread_sigmask(SIG_SETMASK, &set, NULL) == 0 ? 0 : -1;
}

ssize_t nas_write_nosigpipe(int fd, const void *buffer, size_t count) {
    sigset_t pipe_only, old_mask, pending;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigemptyset(&pending);
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    ssize_t written = write(fd, buffer, count);
    int saved = errno;
    if (written < 0 && saved == EPIPE && !was_pending) {
        /* The SIGPIPE this write raised is pending on this thread: take it before the mask comes back. */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    errno = saved;
    return written;
}
