"""Butterfly baichuan (百川) message queue and canghai (沧海) dashboard"""
