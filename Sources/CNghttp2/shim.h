/* libnghttp2 and the Linux calls of the event loop that drives it (epoll, eventfd) and of the command runner
 * (posix_spawn), with typed shims where
 * Swift cannot use the C declarations directly. */
#ifndef NAS_CNGHTTP2_SHIM_H
#define NAS_CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <spawn.h>

/* glibc >= 2.34 has it, declared only under _GNU_SOURCE / __USE_MISC variants the module may not see. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

/* The command runner's child closes every descriptor from `from` on: no socket of the worker leaks into it. */
static inline int nas_spawn_close_from(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

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

static inline int nas_errno(void) { return errno; }

/* A response body handed to nghttp2 through a read callback that finds the body by stream id. */
static inline int nas_nghttp2_submit_response(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva,
                                              size_t nvlen, nghttp2_data_source_read_callback read_callback) {
    if (read_callback == NULL) {
        return nghttp2_submit_response(session, stream_id, nva, nvlen, NULL);
    }
    nghttp2_data_provider provider;
    provider.source.ptr = NULL;
    provider.read_callback = read_callback;
    return nghttp2_submit_response(session, stream_id, nva, nvlen, &provider);
}

/* A request with its body handed to nghttp2 through a read callback that finds the body by stream id; returns the
 * new stream's id, or a negative nghttp2 error. */
static inline int32_t nas_nghttp2_submit_request(nghttp2_session *session, const nghttp2_nv *nva, size_t nvlen,
                                                 nghttp2_data_source_read_callback read_callback) {
    if (read_callback == NULL) {
        return nghttp2_submit_request(session, NULL, nva, nvlen, NULL, NULL);
    }
    nghttp2_data_provider provider;
    provider.source.ptr = NULL;
    provider.read_callback = read_callback;
    return nghttp2_submit_request(session, NULL, nva, nvlen, &provider, NULL);
}
#endif
