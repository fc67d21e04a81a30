#include "os.h"
#include "log.h"
hak_block *hak_os_map(size_t n) { (void)n; hak_log_write("map"); return NULL; }
