#pragma once
void hak_log(const char *msg);
