// The optional crash report (HAKMEM_CRASH_REPORT=1): on SIGSEGV, SIGBUS or
// SIGABRT, a few lines written with write(2), then the program's previous
// handler or the default action, so the exit status does not change.
#ifndef HAKMEM_CRASH_H
#define HAKMEM_CRASH_H

#include "types.h"

HAK_EXTERN_C_BEGIN

void hak_crash_install(void) HAK_INTERNAL;

HAK_EXTERN_C_END

#endif // HAKMEM_CRASH_H
