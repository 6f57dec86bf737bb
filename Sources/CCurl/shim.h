/* Typed wrappers of libcurl's variadic and macro API, which Swift cannot call directly: the easy interface, which
 * Google Cloud Storage (Sources/Fleet/Storage) uses; fleet calls go over Sources/HTTP2. */
#ifndef NAS_CCURL_SHIM_H
#define NAS_CCURL_SHIM_H
#include <curl/curl.h>

static inline CURLcode nas_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nas_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nas_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nas_curl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nas_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
typedef size_t (*nas_curl_data_callback)(char *data, size_t size, size_t count, void *user);
static inline CURLcode nas_curl_easy_setopt_data_callback(CURL *handle, CURLoption option,
                                                          nas_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode nas_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
#endif
