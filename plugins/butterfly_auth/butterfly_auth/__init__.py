"""Butterfly huoyan (火眼) auth: users, tokens, route protection"""
