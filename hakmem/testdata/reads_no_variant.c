// Input of variant_independence_checker_test: a source that reads only the
// build-mode defines, which the checker must accept.
#if HAKMEM_DEBUG
int hakmem_testdata_debug = 1;
#else
int hakmem_testdata_debug = 0;
#endif
