"""Business status codes (``stat``) a handler returns, as in the original Butterfly.

Each value equals its name, and the framework's own error stats match
:mod:`kernel.errors` (``ERR_BAD_PARAMS`` is what a 400 carries, and so on). Apps
define their own ``ERR_*`` strings next to these.
"""

OK = "OK"
ERR = "ERR"
ERR_BAD_PARAMS = "ERR_BAD_PARAMS"
ERR_SERVER_EXCEPTION = "ERR_SERVER_EXCEPTION"
ERR_NOT_FOUND = "ERR_NOT_FOUND"
ERR_UNAUTHORIZED = "ERR_UNAUTHORIZED"
ERR_FORBIDDEN = "ERR_FORBIDDEN"
ERR_METHOD_NOT_ALLOWED = "ERR_METHOD_NOT_ALLOWED"
ERR_PAYLOAD_TOO_LARGE = "ERR_PAYLOAD_TOO_LARGE"
ERR_TOO_MANY_REQUESTS = "ERR_TOO_MANY_REQUESTS"
ERR_SERVICE_UNAVAILABLE = "ERR_SERVICE_UNAVAILABLE"

#: HTTP statuses for raw (``@http``) handlers, as in the original.
HTTP_OK = 200
HTTP_REDIRECT = 302
HTTP_BAD_PARAM = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_SERVER_ERROR = 500
