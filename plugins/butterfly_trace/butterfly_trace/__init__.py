"""Butterfly trace: request ids, access/error logs, timing points, runtime log level"""
