/* The Linux calls of the package's system layer, with typed shims where Swift cannot use the C declarations
 * directly (macros, packed structs, calls declared only under _GNU_SOURCE): the event loops' epoll and eventfd,
 * non-blocking sockets, posix_spawn's extra file actions, wait statuses and pidfds, and the signal trap.
 * Sources/System wraps them for Swift; the HTTP/2 loops call the epoll and socket shims directly. */
#ifndef NAS_CSYSTEM_H
#define NAS_CSYSTEM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>
#include <errno.h>
#include <stdint.h>

static inline int nas_errno(void) { return errno; }

/* ---- epoll, eventfd, sockets ---- */

/* struct epoll_event is packed on x86_64: keep its layout in C. */
static inline int nas_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event event;
    event.events = events;
    event.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &event);
}

/* Waits for events and stores them as (events, data) pairs in two plain arrays. */
static inline int nas_epoll_wait(int epfd, uint32_t *events, uint64_t *data, int capacity, int timeout) {
    struct epoll_event buffer[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(epfd, buffer, capacity, timeout);
    for (int i = 0; i < count; i++) {
        events[i] = buffer[i].events;
        data[i] = buffer[i].data.u64;
    }
    return count;
}

static inline int nas_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* accept4 needs _GNU_SOURCE, which the module's headers are not built with. */
static inline int nas_accept_nonblocking(int fd) {
    int client = accept(fd, NULL, NULL);
    if (client < 0) return -1;
    fcntl(client, F_SETFD, FD_CLOEXEC);
    if (nas_set_nonblocking(client) < 0) { close(client); return -1; }
    return client;
}

/* ---- posix_spawn, wait statuses, pidfds ---- */

/* glibc (2.27 to 2.36) has them, declared only under _GNU_SOURCE / __USE_MISC variants the module may not
 * see. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
extern int pidfd_open(pid_t pid, unsigned int flags);
extern int pipe2(int fds[2], int flags);

/* The child closes every descriptor from `from` on: nothing of the parent's (sockets, pipes of other children)
 * leaks into it. */
static inline int nas_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

/* The child starts in `path`. */
static inline int nas_spawn_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/* Pipes whose ends are closed on exec: a child spawned by another thread meanwhile never holds them open. */
static inline int nas_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

static inline int nas_open_cloexec(const char *path, int flags, mode_t mode) {
    return open(path, flags | O_CLOEXEC, mode);
}

/* 1 when `pid` has ended (left as a zombie, not reaped, so that its pid and process group cannot be reused yet),
 * 0 when it runs (only with block == 0), -1 with errno set. */
static inline int nas_wait_ended(pid_t pid, int block) {
    siginfo_t info;
    info.si_pid = 0;
    int result;
    do {
        result = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
    } while (result < 0 && errno == EINTR);
    if (result < 0) return -1;
    return info.si_pid == pid ? 1 : 0;
}

/* A pidfd for `pid` (readable once it ends), or -1 with errno set (ENOSYS before Linux 5.3). */
static inline int nas_pidfd_open(pid_t pid) { return pidfd_open(pid, 0); }

static inline int nas_wait_exited(int status) { return WIFEXITED(status); }
static inline int nas_wait_exit_code(int status) { return WEXITSTATUS(status); }
static inline int nas_wait_signaled(int status) { return WIFSIGNALED(status); }
static inline int nas_wait_signal(int status) { return WTERMSIG(status); }

/* ---- signals ---- */

/* Installs a handler for `signo` that writes the signal's number (one byte) to `fd`, a non-blocking pipe whose
 * reader does the real work on a thread of its own; and unblocks `signo` in the calling thread. Returns 0, or -1
 * with errno set. All trapped signals share the one `fd` given last. */
int nas_signal_trap(int signo, int fd);

/* Restores the default action of `signo`. */
int nas_signal_default(int signo);

/* Ignores `signo` (SIGPIPE: a write to a closed socket returns EPIPE instead of ending the process). */
int nas_signal_ignore(int signo);

/* Unblocks `signo` in the calling thread (a parent may have left it blocked: Foundation's Process passes on the
 * spawning thread's mask). */
int nas_signal_unblock(int signo);

/* Writes to a pipe with SIGPIPE held off for the calling thread: a reader that is gone makes it return -1 with
 * errno EPIPE instead of ending the process. */
ssize_t nas_write_nosigpipe(int fd, const void *buffer, size_t count);

/* Unblocks every signal in the calling thread: the signal trap's own thread takes any signal with a handler. */
int nas_signal_unblock_all(void);

/* The handler currently installed for `signo`: 0 default, 1 ignored, 2 a handler; -1 with errno set. */
int nas_signal_disposition(int signo);

/* The size of a cpu_set_t, for the buffer nas_pin_to_current_cpu saves the thread's CPU set in. */
size_t nas_cpu_set_size(void);

/* Saves the calling thread's CPU set in `saved` (nas_cpu_set_size() bytes) and pins the thread to the CPU it is
 * running on; returns that CPU, or -1 with errno set (the thread is then as it was). */
int nas_pin_to_current_cpu(void *saved);

/* Writes the calling thread's CPU set into `set` (nas_cpu_set_size() bytes); 0, or -1 with errno set. */
int nas_thread_cpus(void *set);

/* Gives the calling thread back the CPU set `saved`; 0, or -1 with errno set. */
int nas_restore_affinity(const void *saved);
#endif
