# The lead's units: configuration, IPC framing, building replies.
pyexec_unit_test(test_config SOURCES test_config.c LIBS pyexec_config)
pyexec_unit_test(test_ipc SOURCES test_ipc.c LIBS pyexec_ipc)
pyexec_unit_test(test_reply SOURCES test_reply.c LIBS pyexec_worker)
