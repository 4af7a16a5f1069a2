"""Butterfly ruqi (如期): highly available scheduled jobs"""
