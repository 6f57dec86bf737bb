/*
 * nas_constraint.h: the constraint plugin ABI of the `nas` toolkit.
 *
 * A plugin is a shared library exporting one C symbol, `nas_constraint_plugin`, that returns a
 * pointer to a static descriptor. The loader (`dlopen(RTLD_NOW | RTLD_LOCAL)`) reads
 * `abi_version` first and refuses versions outside [NAS_CONSTRAINT_ABI_MIN, NAS_CONSTRAINT_ABI_VERSION].
 *
 * Errors never cross the ABI as a crash: every callback returns a `nas_status` and, on failure,
 * writes a NUL-terminated message of at most `error_capacity` bytes into `error`.
 *
 * Build a plugin:  cc -shared -fPIC -I<dir of this header> -o libmy_constraint.so my_constraint.c
 */
#ifndef NAS_CONSTRAINT_H
#define NAS_CONSTRAINT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. Bump on any incompatible change. */
#define NAS_CONSTRAINT_ABI_VERSION 1u
/** The oldest ABI version the loader still accepts. */
#define NAS_CONSTRAINT_ABI_MIN 1u
/** The name of the one symbol a plugin exports. */
#define NAS_CONSTRAINT_ENTRY_SYMBOL "nas_constraint_plugin"

/** Return codes of every callback. */
typedef enum nas_status {
    NAS_STATUS_OK = 0,
    /** The input was wrong (a model the plugin cannot read, an invalid target...). */
    NAS_STATUS_INVALID_INPUT = 1,
    /** The plugin cannot do this (e.g. it does not support this model format). */
    NAS_STATUS_UNSUPPORTED = 2,
    /** Anything else that went wrong inside the plugin. */
    NAS_STATUS_INTERNAL = 3
} nas_status;

/** What `score` receives: one constraint of one trial. */
typedef struct nas_score_args {
    /** The measured value of the constraint's metric. */
    double measured;
    /** The constraint's target (finite and non-zero). */
    double target;
    /** The exponent below or at the target (MnasNet's alpha). */
    double alpha;
    /** The exponent above the target (MnasNet's beta). */
    double beta;
    /** The constraint's weight, which scales alpha and beta in the standard factor. */
    double weight;
} nas_score_args;

/**
 * Computes the plugin's metric from a model (for example FLOPs from ONNX bytes).
 * `format` names the encoding of `model`, e.g. "onnx". Writes the value to `*value`.
 */
typedef int32_t (*nas_measure_fn)(const uint8_t *model, size_t model_size, const char *format,
                                  double *value, char *error, size_t error_capacity);

/**
 * Replaces the standard factor `(measured/target)^(weight*(alpha or beta))`.
 * Must write a finite factor >= 0 to `*factor`; the loader rejects anything else.
 */
typedef int32_t (*nas_score_fn)(const nas_score_args *args, double *factor, char *error,
                                size_t error_capacity);

/** The descriptor a plugin returns. Strings are static, UTF-8, NUL-terminated. */
typedef struct nas_constraint_descriptor {
    /** Must be NAS_CONSTRAINT_ABI_VERSION of the header the plugin was built with. */
    uint32_t abi_version;
    /** sizeof(nas_constraint_descriptor) as the plugin saw it. */
    uint32_t struct_size;
    /** The constraint's name, unique among loaded plugins: [A-Za-z0-9_.-]+. */
    const char *name;
    /** The metric key the constraint reads, e.g. "latency_ms"; NULL or "" means `name`. */
    const char *metric;
    /** The metric's unit, e.g. "ms", "bytes", "W"; may be NULL. */
    const char *unit;
    /** One line for `nas plugins list`; may be NULL. */
    const char *description;
    /** Optional: computes the metric from a model. NULL when the metric is measured elsewhere. */
    nas_measure_fn measure;
    /** Optional: replaces the standard factor. NULL keeps MnasNet's. */
    nas_score_fn score;
} nas_constraint_descriptor;

/** The entry point every plugin exports (see NAS_CONSTRAINT_ENTRY_SYMBOL). */
typedef const nas_constraint_descriptor *(*nas_constraint_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* NAS_CONSTRAINT_H */
