# Unit tests of server/http.c, server/request.c and server/errors.c.
find_package(Threads REQUIRED)
pyexec_unit_test(test_errors SOURCES test_errors.c LIBS pyexec_http)
pyexec_unit_test(test_request SOURCES test_request.c LIBS pyexec_http pyexec_ipc)
pyexec_unit_test(test_http SOURCES test_http.c LIBS pyexec_http Threads::Threads)
