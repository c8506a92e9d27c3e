/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_shards(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'shards' is not implemented yet\n");
    return 1;
}
