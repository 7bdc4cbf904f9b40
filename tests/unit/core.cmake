# Units shared by the acceptor and the worker: configuration, IPC framing,
# replies, JSON text checks, the worker's heap settling.
pyexec_unit_test(test_config SOURCES test_config.c LIBS pyexec_config)
pyexec_unit_test(test_ipc SOURCES test_ipc.c LIBS pyexec_ipc)
pyexec_unit_test(test_reply SOURCES test_reply.c LIBS pyexec_worker)
pyexec_unit_test(test_jsontext SOURCES test_jsontext.c LIBS pyexec_jsontext)
pyexec_unit_test(test_forkheap SOURCES test_forkheap.c LIBS pyexec_worker)
# As the template runs (server/env.c): the heap that forkheap works on.
set_tests_properties(test_forkheap PROPERTIES ENVIRONMENT GLIBC_TUNABLES=glibc.malloc.hugetlb=1)
pyexec_unit_test(test_reap SOURCES test_reap.c LIBS pyexec_worker)
pyexec_unit_test(test_supervise SOURCES test_supervise.c LIBS pyexec_worker)
pyexec_unit_test(test_singlefork SOURCES test_singlefork.c LIBS pyexec_worker)
pyexec_unit_test(test_base64 SOURCES test_base64.c LIBS pyexec_base64)
pyexec_unit_test(test_files SOURCES test_files.c LIBS pyexec_worker)
pyexec_unit_test(test_wipe SOURCES test_wipe.c LIBS pyexec_wipe)
