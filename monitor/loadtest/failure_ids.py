"""The ids of the classifier's findings, the order they are reported in, and which causes
explain a crash."""

LIBRARY = "loadtest-library-load-failed"
IMPORT = "loadtest-tf-import-broken"
DRIVER = "loadtest-driver-insufficient"
NO_DEVICE = "loadtest-no-device"
LIBS_SKIPPED = "loadtest-gpu-libs-skipped"
CUDNN_INIT = "loadtest-cudnn-init-failed"
CUDNN_VERSION = "loadtest-cudnn-version-mismatch"
CUBLAS = "loadtest-cublas-failed"
OOM = "loadtest-gpu-oom"
PTXAS = "loadtest-ptxas-missing"
ILLEGAL = "loadtest-illegal-instruction"
CRASHED = "loadtest-crashed"
TIMEOUT = "loadtest-timeout"
UNKNOWN = "loadtest-unknown-failure"

# Most specific first: a root cause before the symptoms it produces.
ORDER = (
    DRIVER,
    ILLEGAL,
    LIBRARY,
    IMPORT,
    CUDNN_VERSION,
    NO_DEVICE,
    PTXAS,
    OOM,
    CUDNN_INIT,
    CUBLAS,
    LIBS_SKIPPED,
    CRASHED,
    TIMEOUT,
    UNKNOWN,
)

# Causes after which an abort or segfault is expected, not a second problem.
CRASH_EXPLAINED_BY = frozenset(
    {DRIVER, ILLEGAL, LIBRARY, CUDNN_VERSION, CUDNN_INIT, CUBLAS, OOM, PTXAS}
)
