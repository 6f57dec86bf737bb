/* libnghttp2, with typed shims where Swift cannot use its C declarations directly. The Linux calls of the event
 * loops that drive it (epoll, eventfd, sockets) are in Sources/CSystem. */
#ifndef NAS_CNGHTTP2_SHIM_H
#define NAS_CNGHTTP2_SHIM_H
#include <nghttp2/nghttp2.h>
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
