/* Pinning the calling thread to one CPU for a measurement (cpu_set_t's macros are only declared under
 * _GNU_SOURCE, which must come before any system header). */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include "CSystem.h"

size_t nas_cpu_set_size(void) { return sizeof(cpu_set_t); }

int nas_pin_to_current_cpu(void *saved) {
    if (sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)saved) != 0) return -1;
    int cpu = sched_getcpu();
    if (cpu < 0 || cpu >= CPU_SETSIZE) return -1;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof one, &one) == 0 ? cpu : -1;
}

int nas_thread_cpus(void *set) { return sched_getaffinity(0, sizeof(cpu_set_t), (cpu_set_t *)set); }

int nas_restore_affinity(const void *saved) {
    return sched_setaffinity(0, sizeof(cpu_set_t), (const cpu_set_t *)saved);
}
