#include "train/version.h"
const char *mixtape_version(void) { return MIXTAPE_VERSION; }
