/* libprotobuf-c, the runtime of the generated ONNX messages in COnnx. */
#ifndef NAS_CPROTOBUFC_SHIM_H
#define NAS_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
