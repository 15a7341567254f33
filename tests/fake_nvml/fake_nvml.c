/*
 * A fake NVML (libnvidia-ml.so.1) that the real pynvml (nvidia-ml-py) loads in tests.
 *
 * Every call re-reads its config file, so a test can change the "machine" (upgrade the driver,
 * lose a GPU) while a process keeps the library loaded. The file is $FAKE_NVML_CONFIG when
 * that is set, else `fake_nvml.conf` in the directory the library was loaded from (so two
 * copies loaded into one process from two directories answer from two configs).
 * Config lines are `key=value`; blank lines and lines starting with '#' are ignored; a key
 * given twice takes its last value. Numbers accept C syntax (0x.. for hex).
 *
 *   init_error=N                  nvmlInit* returns N (9 driver not loaded, 4 no permission,
 *                                 18 RM version mismatch, ...)
 *   driver_version=550.54.14      nvmlSystemGetDriverVersion
 *   nvml_version=12.550.54.14     nvmlSystemGetNVMLVersion
 *   cuda_driver_version=12040     nvmlSystemGetCudaDriverVersion(_v2)
 *   device_count=2                nvmlDeviceGetCount(_v2) (default 0)
 *   gpu.N.name / .uuid / .pci_bus_id ("00000000:01:00.0") / .pci_device_id (0x268410DE)
 *   gpu.N.cc=8.6                  nvmlDeviceGetCudaComputeCapability
 *   gpu.N.memory_total_mib / .memory_used_mib
 *   gpu.N.utilization.gpu / .utilization.memory      (percent)
 *   gpu.N.processes=PID[:USED_MIB],...               compute processes
 *   gpu.N.clock.graphics|sm|mem|video, gpu.N.max_clock.<same>   (MHz)
 *   gpu.N.throttle_reasons=0x4    nvmlDeviceGetCurrentClocks{Throttle,Event}Reasons
 *   gpu.N.error=15                every query of device N (its handle too) returns 15
 *   gpu.N.error.<nvmlFunction>=N  one function fails for device N
 *   error.<nvmlFunction>=N        one function fails (system-wide)
 *
 * A missing or unreadable config file is an error, never a default machine:
 * nvmlInit returns NVML_ERROR_UNKNOWN (999) and prints one line to stderr, so a test that
 * forgot to write its config fails loudly instead of passing on a made-up GPU.
 *
 * Like the real library, calls other than init/shutdown/errorString return
 * NVML_ERROR_UNINITIALIZED unless nvmlInit succeeded more often than nvmlShutdown was called.
 * fakeNvmlInitCount() (not an NVML function) returns that balance for tests.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define MAX_DEVICES 64
#define MIB (1024ULL * 1024ULL)
#define NVML_MEMORY_V2 0x02000028u

struct fake_device {
    unsigned index;
};

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    char busIdLegacy[16];
    unsigned domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned gpu, memory;
} nvmlUtilization_t;

typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

static struct fake_device devices[MAX_DEVICES];
static int init_count;

/* ------------------------------------------------------------------------- config */

struct entry {
    char *key, *value;
};

struct config {
    struct entry *entries;
    size_t count;
    char *text;
};

static char *trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return s;
}

static void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    free(cfg->entries);
    free(cfg->text);
    free(cfg);
}

/* $FAKE_NVML_CONFIG, else fake_nvml.conf beside this library; "" when neither can be told. */
static void config_path(char *out, size_t size)
{
    const char *env = getenv("FAKE_NVML_CONFIG");
    Dl_info info;
    const char *slash;
    out[0] = '\0';
    if (env && *env) {
        snprintf(out, size, "%s", env);
    } else if (dladdr((void *)config_path, &info) && info.dli_fname
               && (slash = strrchr(info.dli_fname, '/'))) {
        snprintf(out, size, "%.*s/fake_nvml.conf", (int)(slash - info.dli_fname),
                 info.dli_fname);
    }
}

/* The whole file, parsed; NULL when it is missing or unreadable. */
static struct config *config_load(void)
{
    char path[PATH_MAX];
    struct config *cfg;
    FILE *f;
    long size;
    size_t lines = 1, i;
    char *line, *next;

    config_path(path, sizeof path);
    if (!*path)
        return NULL;
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    cfg = calloc(1, sizeof *cfg);
    if (!cfg || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0
        || !(cfg->text = malloc((size_t)size + 1))
        || fread(cfg->text, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        config_free(cfg);
        return NULL;
    }
    fclose(f);
    cfg->text[size] = '\0';
    for (i = 0; i < (size_t)size; i++)
        lines += cfg->text[i] == '\n';
    cfg->entries = calloc(lines, sizeof *cfg->entries);
    if (!cfg->entries) {
        config_free(cfg);
        return NULL;
    }
    for (line = cfg->text; line; line = next) {
        char *eq, *key;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        key = trim(line);
        if (*key == '\0' || *key == '#' || !(eq = strchr(key, '=')))
            continue;
        *eq = '\0';
        cfg->entries[cfg->count].key = trim(key);
        cfg->entries[cfg->count].value = trim(eq + 1);
        cfg->count++;
    }
    return cfg;
}

static const char *config_get(const struct config *cfg, const char *key)
{
    size_t i;
    for (i = cfg->count; i-- > 0;)
        if (strcmp(cfg->entries[i].key, key) == 0)
            return cfg->entries[i].value;
    return NULL;
}

static const char *gpu_get(const struct config *cfg, unsigned index, const char *suffix)
{
    char key[256];
    snprintf(key, sizeof key, "gpu.%u.%s", index, suffix);
    return config_get(cfg, key);
}

static unsigned long long to_number(const char *value, unsigned long long fallback)
{
    char *end;
    unsigned long long n;
    if (!value || !*value)
        return fallback;
    n = strtoull(value, &end, 0);
    return *end == '\0' ? n : fallback;
}

/* The error configured for `function` (on device `index`, or -1 for a system call). */
static nvmlReturn_t configured_error(const struct config *cfg, const char *function, int index)
{
    char key[256];
    const char *value;
    if (index >= 0) {
        snprintf(key, sizeof key, "error.%s", function);
        if ((value = gpu_get(cfg, (unsigned)index, key)))
            return (nvmlReturn_t)to_number(value, NVML_ERROR_UNKNOWN);
        if ((value = gpu_get(cfg, (unsigned)index, "error")))
            return (nvmlReturn_t)to_number(value, NVML_ERROR_UNKNOWN);
    }
    snprintf(key, sizeof key, "error.%s", function);
    if ((value = config_get(cfg, key)))
        return (nvmlReturn_t)to_number(value, NVML_ERROR_UNKNOWN);
    return NVML_SUCCESS;
}

static unsigned device_count(const struct config *cfg)
{
    unsigned long long n = to_number(config_get(cfg, "device_count"), 0);
    return n > MAX_DEVICES ? MAX_DEVICES : (unsigned)n;
}

/*
 * Every NVML entry point starts here: load the config, check init and the configured error.
 * index: -1 for a system call, else the device index (checked against device_count).
 */
static nvmlReturn_t begin(struct config **cfg, const char *function, int index)
{
    nvmlReturn_t ret;
    if (__atomic_load_n(&init_count, __ATOMIC_SEQ_CST) <= 0)
        return NVML_ERROR_UNINITIALIZED;
    *cfg = config_load();
    if (!*cfg)
        return NVML_ERROR_UNKNOWN;
    if (index >= 0 && (unsigned)index >= device_count(*cfg))
        ret = NVML_ERROR_INVALID_ARGUMENT;
    else
        ret = configured_error(*cfg, function, index);
    if (ret != NVML_SUCCESS) {
        config_free(*cfg);
        *cfg = NULL;
    }
    return ret;
}

static int device_index(nvmlDevice_t device)
{
    if (device < devices || device >= devices + MAX_DEVICES)
        return -1;
    return (int)(device - devices);
}

static nvmlReturn_t copy_string(const char *value, char *out, unsigned length)
{
    if (!out)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------------- init */

static nvmlReturn_t init(void)
{
    struct config *cfg = config_load();
    nvmlReturn_t ret;
    if (!cfg) {
        char path[PATH_MAX];
        config_path(path, sizeof path);
        fprintf(stderr, "fake_nvml: cannot read config file '%s'\n", path);
        return NVML_ERROR_UNKNOWN;
    }
    ret = (nvmlReturn_t)to_number(config_get(cfg, "init_error"), NVML_SUCCESS);
    config_free(cfg);
    if (ret == NVML_SUCCESS)
        __atomic_add_fetch(&init_count, 1, __ATOMIC_SEQ_CST);
    return ret;
}

nvmlReturn_t nvmlInitWithFlags(unsigned flags)
{
    (void)flags;
    return init();
}

nvmlReturn_t nvmlInit_v2(void) { return init(); }
nvmlReturn_t nvmlInit(void) { return init(); }

nvmlReturn_t nvmlShutdown(void)
{
    int count = __atomic_load_n(&init_count, __ATOMIC_SEQ_CST);
    while (count > 0) {
        if (__atomic_compare_exchange_n(&init_count, &count, count - 1, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return NVML_SUCCESS;
    }
    return NVML_ERROR_UNINITIALIZED;
}

int fakeNvmlInitCount(void) { return __atomic_load_n(&init_count, __ATOMIC_SEQ_CST); }

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case 0: return "Success";
    case 1: return "Uninitialized";
    case 2: return "Invalid Argument";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 5: return "Already Initialized";
    case 6: return "Not Found";
    case 7: return "Insufficient Size";
    case 8: return "Insufficient External Power";
    case 9: return "Driver Not Loaded";
    case 10: return "Timeout";
    case 11: return "Interrupt Request Issue";
    case 12: return "NVML Shared Library Not Found";
    case 13: return "Function Not Found";
    case 14: return "Corrupted infoROM";
    case 15: return "GPU is lost";
    case 16: return "GPU requires restart";
    case 17: return "The operating system has blocked the request.";
    case 18: return "Driver/library version mismatch";
    case 19: return "In use by another client";
    case 20: return "Insufficient Memory";
    case 21: return "No data";
    case 25: return "Argument version mismatch";
    case 26: return "Deprecated";
    case 27: return "Not ready";
    case 28: return "GPU not found";
    case 29: return "Invalid state";
    default: return "Unknown Error";
    }
}

/* ------------------------------------------------------------------------- system */

static nvmlReturn_t system_string(const char *function, const char *key, char *out,
                                  unsigned length)
{
    struct config *cfg;
    nvmlReturn_t ret = begin(&cfg, function, -1);
    const char *value;
    if (ret != NVML_SUCCESS)
        return ret;
    value = config_get(cfg, key);
    ret = value ? copy_string(value, out, length) : NVML_ERROR_NOT_SUPPORTED;
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length)
{
    return system_string("nvmlSystemGetDriverVersion", "driver_version", version, length);
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned length)
{
    return system_string("nvmlSystemGetNVMLVersion", "nvml_version", version, length);
}

static nvmlReturn_t cuda_driver_version(const char *function, int *version)
{
    struct config *cfg;
    nvmlReturn_t ret = begin(&cfg, function, -1);
    const char *value;
    if (ret != NVML_SUCCESS)
        return ret;
    value = config_get(cfg, "cuda_driver_version");
    if (!version)
        ret = NVML_ERROR_INVALID_ARGUMENT;
    else if (!value)
        ret = NVML_ERROR_NOT_SUPPORTED;
    else
        *version = (int)to_number(value, 0);
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version)
{
    return cuda_driver_version("nvmlSystemGetCudaDriverVersion", version);
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version)
{
    return cuda_driver_version("nvmlSystemGetCudaDriverVersion_v2", version);
}

/* ------------------------------------------------------------------------- devices */

static nvmlReturn_t get_count(const char *function, unsigned *count)
{
    struct config *cfg;
    nvmlReturn_t ret = begin(&cfg, function, -1);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!count)
        ret = NVML_ERROR_INVALID_ARGUMENT;
    else
        *count = device_count(cfg);
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count)
{
    return get_count("nvmlDeviceGetCount_v2", count);
}

nvmlReturn_t nvmlDeviceGetCount(unsigned *count) { return get_count("nvmlDeviceGetCount", count); }

static nvmlReturn_t get_handle(const char *function, unsigned index, nvmlDevice_t *device)
{
    struct config *cfg;
    nvmlReturn_t ret;
    if (index >= MAX_DEVICES)
        return NVML_ERROR_INVALID_ARGUMENT;
    ret = begin(&cfg, function, (int)index);
    if (ret != NVML_SUCCESS)
        return ret;
    config_free(cfg);
    if (!device)
        return NVML_ERROR_INVALID_ARGUMENT;
    devices[index].index = index;
    *device = &devices[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device)
{
    return get_handle("nvmlDeviceGetHandleByIndex_v2", index, device);
}

nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned index, nvmlDevice_t *device)
{
    return get_handle("nvmlDeviceGetHandleByIndex", index, device);
}

/* Start a per-device call: config loaded, device valid, no configured error. */
static nvmlReturn_t begin_device(struct config **cfg, const char *function, nvmlDevice_t device,
                                 unsigned *index)
{
    int i = device_index(device);
    if (i < 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned)i;
    return begin(cfg, function, i);
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned *index)
{
    struct config *cfg;
    unsigned i;
    nvmlReturn_t ret = begin_device(&cfg, "nvmlDeviceGetIndex", device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    config_free(cfg);
    if (!index)
        return NVML_ERROR_INVALID_ARGUMENT;
    *index = i;
    return NVML_SUCCESS;
}

static nvmlReturn_t device_string(const char *function, nvmlDevice_t device, const char *suffix,
                                  char *out, unsigned length)
{
    struct config *cfg;
    unsigned i;
    const char *value;
    nvmlReturn_t ret = begin_device(&cfg, function, device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    value = gpu_get(cfg, i, suffix);
    ret = value ? copy_string(value, out, length) : NVML_ERROR_NOT_SUPPORTED;
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length)
{
    return device_string("nvmlDeviceGetName", device, "name", name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length)
{
    return device_string("nvmlDeviceGetUUID", device, "uuid", uuid, length);
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major, int *minor)
{
    struct config *cfg;
    unsigned i;
    const char *value;
    nvmlReturn_t ret = begin_device(&cfg, "nvmlDeviceGetCudaComputeCapability", device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    value = gpu_get(cfg, i, "cc");
    if (!major || !minor)
        ret = NVML_ERROR_INVALID_ARGUMENT;
    else if (!value || sscanf(value, "%d.%d", major, minor) != 2)
        ret = NVML_ERROR_NOT_SUPPORTED;
    config_free(cfg);
    return ret;
}

static void memory_of(const struct config *cfg, unsigned i, unsigned long long *total,
                      unsigned long long *used)
{
    *total = to_number(gpu_get(cfg, i, "memory_total_mib"), 0) * MIB;
    *used = to_number(gpu_get(cfg, i, "memory_used_mib"), 0) * MIB;
    if (*used > *total)
        *used = *total;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
{
    struct config *cfg;
    unsigned i;
    nvmlReturn_t ret = begin_device(&cfg, "nvmlDeviceGetMemoryInfo", device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!memory) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else {
        memory_of(cfg, i, &memory->total, &memory->used);
        memory->free = memory->total - memory->used;
    }
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory)
{
    struct config *cfg;
    unsigned i;
    nvmlReturn_t ret = begin_device(&cfg, "nvmlDeviceGetMemoryInfo_v2", device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!memory) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else if (memory->version != NVML_MEMORY_V2) {
        ret = NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    } else {
        memory_of(cfg, i, &memory->total, &memory->used);
        memory->reserved = 0;
        memory->free = memory->total - memory->used;
    }
    config_free(cfg);
    return ret;
}

static nvmlReturn_t pci_info(const char *function, nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    struct config *cfg;
    unsigned i;
    const char *bus_id;
    nvmlReturn_t ret = begin_device(&cfg, function, device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    bus_id = gpu_get(cfg, i, "pci_bus_id");
    if (!pci) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else {
        memset(pci, 0, sizeof *pci);
        if (bus_id) {
            snprintf(pci->busId, sizeof pci->busId, "%s", bus_id);
            sscanf(bus_id, "%x:%x:%x", &pci->domain, &pci->bus, &pci->device);
            snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "%04X:%02X:%02X.0",
                     pci->domain & 0xFFFF, pci->bus & 0xFF, pci->device & 0xFF);
        }
        pci->pciDeviceId = (unsigned)to_number(gpu_get(cfg, i, "pci_device_id"), 0x220410DE);
        pci->pciSubSystemId = (unsigned)to_number(gpu_get(cfg, i, "pci_subsystem_id"), 0);
    }
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    return pci_info("nvmlDeviceGetPciInfo_v3", device, pci);
}

nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    return pci_info("nvmlDeviceGetPciInfo_v2", device, pci);
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *utilization)
{
    struct config *cfg;
    unsigned i;
    nvmlReturn_t ret = begin_device(&cfg, "nvmlDeviceGetUtilizationRates", device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!utilization) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else {
        utilization->gpu = (unsigned)to_number(gpu_get(cfg, i, "utilization.gpu"), 0);
        utilization->memory = (unsigned)to_number(gpu_get(cfg, i, "utilization.memory"), 0);
    }
    config_free(cfg);
    return ret;
}

/* "PID[:USED_MIB],..." into infos (when not NULL); returns how many processes there are. */
static unsigned parse_processes(const char *value, nvmlProcessInfo_t *infos, unsigned capacity)
{
    unsigned n = 0;
    const char *p = value;
    while (p && *p) {
        char *end;
        unsigned long long pid, used = 0;
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        pid = strtoull(p, &end, 10);
        if (end == p)
            break;
        p = end;
        if (*p == ':') {
            used = strtoull(p + 1, &end, 10);
            p = end;
        }
        if (infos && n < capacity) {
            infos[n].pid = (unsigned)pid;
            infos[n].usedGpuMemory = used * MIB;
            infos[n].gpuInstanceId = 0xFFFFFFFFu;
            infos[n].computeInstanceId = 0xFFFFFFFFu;
        }
        n++;
    }
    return n;
}

static nvmlReturn_t running_processes(const char *function, nvmlDevice_t device,
                                      unsigned *count, nvmlProcessInfo_t *infos)
{
    struct config *cfg;
    unsigned i, n;
    nvmlReturn_t ret = begin_device(&cfg, function, device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!count) {
        config_free(cfg);
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    n = parse_processes(gpu_get(cfg, i, "processes"), NULL, 0);
    if (n > 0 && (!infos || *count < n))
        ret = NVML_ERROR_INSUFFICIENT_SIZE;
    else
        parse_processes(gpu_get(cfg, i, "processes"), infos, n);
    *count = n;
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned *count,
                                                     nvmlProcessInfo_t *infos)
{
    return running_processes("nvmlDeviceGetComputeRunningProcesses_v3", device, count, infos);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned *count,
                                                     nvmlProcessInfo_t *infos)
{
    return running_processes("nvmlDeviceGetComputeRunningProcesses_v2", device, count, infos);
}

static const char *const clock_names[] = {"graphics", "sm", "mem", "video"};

static nvmlReturn_t clock_info(const char *function, const char *prefix, nvmlDevice_t device,
                               unsigned type, unsigned *clock)
{
    struct config *cfg;
    unsigned i;
    char suffix[64];
    const char *value;
    nvmlReturn_t ret = begin_device(&cfg, function, device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!clock || type >= sizeof clock_names / sizeof clock_names[0]) {
        ret = NVML_ERROR_INVALID_ARGUMENT;
    } else {
        snprintf(suffix, sizeof suffix, "%s.%s", prefix, clock_names[type]);
        value = gpu_get(cfg, i, suffix);
        if (value)
            *clock = (unsigned)to_number(value, 0);
        else
            ret = NVML_ERROR_NOT_SUPPORTED;
    }
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned type, unsigned *clock)
{
    return clock_info("nvmlDeviceGetClockInfo", "clock", device, type, clock);
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, unsigned type, unsigned *clock)
{
    return clock_info("nvmlDeviceGetMaxClockInfo", "max_clock", device, type, clock);
}

static nvmlReturn_t clock_reasons(const char *function, nvmlDevice_t device,
                                  unsigned long long *reasons)
{
    struct config *cfg;
    unsigned i;
    nvmlReturn_t ret = begin_device(&cfg, function, device, &i);
    if (ret != NVML_SUCCESS)
        return ret;
    if (!reasons)
        ret = NVML_ERROR_INVALID_ARGUMENT;
    else
        *reasons = to_number(gpu_get(cfg, i, "throttle_reasons"), 0);
    config_free(cfg);
    return ret;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                       unsigned long long *reasons)
{
    return clock_reasons("nvmlDeviceGetCurrentClocksThrottleReasons", device, reasons);
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                    unsigned long long *reasons)
{
    return clock_reasons("nvmlDeviceGetCurrentClocksEventReasons", device, reasons);
}
