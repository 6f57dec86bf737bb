/* libFuzzer harness of the fleet's message decoding: every message type of fleet.proto is unpacked from the
 * input with protobuf-c (what the Swift side calls on every request body), and a decoded message is packed and
 * unpacked again; AddressSanitizer and UBSan catch any bad memory access on the way.
 * Found on the first run: protobuf-c 1.4.1 accepts an unknown field whose tag is field 0 in a non-minimal varint
 * (0x82 0x00), keeps it, packs it minimally (0x02) and then refuses its own output. Harmless here: the Swift side
 * turns decoded messages into Swift values and drops unknown fields, so it never repacks them; the harness
 * therefore does not require the repacked bytes to decode. Build and run: fuzz/run-proto-fuzzer.sh [SECONDS] */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "fleet.pb-c.h"

static const ProtobufCMessageDescriptor *descriptors[] = {
    &nas__fleet__error__descriptor,              &nas__fleet__attribute__descriptor,
    &nas__fleet__register_request__descriptor,   &nas__fleet__register_response__descriptor,
    &nas__fleet__heartbeat_request__descriptor,  &nas__fleet__heartbeat_response__descriptor,
    &nas__fleet__deregister_request__descriptor, &nas__fleet__deregister_response__descriptor,
    &nas__fleet__evaluate_request__descriptor,   &nas__fleet__metric__descriptor,
    &nas__fleet__evaluate_response__descriptor,  &nas__fleet__list_workers_request__descriptor,
    &nas__fleet__worker_info__descriptor,        &nas__fleet__list_workers_response__descriptor,
    &nas__fleet__run_request__descriptor,        &nas__fleet__run_response__descriptor,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (size_t i = 0; i < sizeof(descriptors) / sizeof(descriptors[0]); i++) {
        ProtobufCMessage *message = protobuf_c_message_unpack(descriptors[i], NULL, size, data);
        if (message == NULL) continue;
        size_t packed_size = protobuf_c_message_get_packed_size(message);
        uint8_t *packed = malloc(packed_size + 1);
        protobuf_c_message_pack(message, packed);
        ProtobufCMessage *again = protobuf_c_message_unpack(descriptors[i], NULL, packed_size, packed);
        if (again != NULL) {
            uint8_t *repacked = malloc(protobuf_c_message_get_packed_size(again) + 1);
            protobuf_c_message_pack(again, repacked);
            free(repacked);
            protobuf_c_message_free_unpacked(again, NULL);
        }
        free(packed);
        protobuf_c_message_free_unpacked(message, NULL);
    }
    return 0;
}
