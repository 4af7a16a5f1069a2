"""Butterfly store: one pony Database for every plugin (SQLite, MySQL, PostgreSQL)"""
