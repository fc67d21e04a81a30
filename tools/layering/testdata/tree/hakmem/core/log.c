#include "log.h"
#include <unistd.h>
void hak_log_write(const char *msg) { (void)msg; }
