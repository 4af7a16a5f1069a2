"""Butterfly wuxing (五行): typed config and monitoring data with history"""
