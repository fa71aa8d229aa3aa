/* cli_ops — the producer and inspection commands (submit, status, list, …). */
#include "cli.h"

int cli_submit(int argc, char **argv) { return cli_usage_error("submit: not built yet"); }
int cli_status(int argc, char **argv, bool full) { return cli_usage_error("status: not built yet"); }
int cli_list(int argc, char **argv) { return cli_usage_error("list: not built yet"); }
int cli_retry(int argc, char **argv) { return cli_usage_error("retry: not built yet"); }
int cli_cancel(int argc, char **argv) { return cli_usage_error("cancel: not built yet"); }
int cli_queues(int argc, char **argv) { return cli_usage_error("queues: not built yet"); }
int cli_keygen(int argc, char **argv) { return cli_usage_error("keygen: not built yet"); }
int cli_sign(int argc, char **argv) { return cli_usage_error("sign: not built yet"); }
