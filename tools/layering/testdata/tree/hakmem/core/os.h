#pragma once
#include "types.h"
void *hak_os_map(size_t n);
