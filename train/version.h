#pragma once
#define MIXTAPE_VERSION "0.1.0"
#define MIXTAPE_FORMAT_VERSION 1
const char *mixtape_version(void);
