/* placeholder until the command is implemented */
#include "train/commands.h"
#include <stdio.h>
int cmd_models(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "mixtape: 'models' is not implemented yet\n");
    return 1;
}
