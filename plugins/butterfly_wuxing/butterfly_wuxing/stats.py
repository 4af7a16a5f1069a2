"""The ``stat`` codes wuxing replies with.

Names the original wuxing had are kept as they were (including the original's
spelling of ``ERR_TIME_FORMATE_INVALID``), so existing clients keep working; the
few new ones cover checks the original did not make. The README lists when each
one is returned.
"""

OK = "OK"
#: A parameter is malformed (bad page, bad ``value_format``); ``errors`` lists them.
ERR_BAD_PARAMS = "ERR_BAD_PARAMS"

# -- names ------------------------------------------------------------------------------
ERR_NAMESPACE_IS_INVALID = "ERR_NAMESPACE_IS_INVALID"
ERR_SECTION_NAME_IS_INVALID = "ERR_SECTION_NAME_IS_INVALID"
ERR_SECTION_VERSION_IS_INVALID = "ERR_SECTION_VERSION_IS_INVALID"
ERR_INSTANCE_NAME_IS_INVALID = "ERR_INSTANCE_NAME_IS_INVALID"
ERR_ITEM_NAME_IS_INVALID = "ERR_ITEM_NAME_IS_INVALID"

# -- sections -----------------------------------------------------------------------------
ERR_SECTION_IS_EXIST = "ERR_SECTION_IS_EXIST"
ERR_SECTION_IS_NOT_EXIST = "ERR_SECTION_IS_NOT_EXIST"
ERR_SECTION_IS_ENABLED = "ERR_SECTION_IS_ENABLED"
ERR_SECTION_IS_NOT_ENABLED = "ERR_SECTION_IS_NOT_ENABLED"
ERR_SECTION_ITEM_TYPE_INVALID = "ERR_SECTION_ITEM_TYPE_INVALID"
ERR_SECTION_ITEM_IS_EXIST = "ERR_SECTION_ITEM_IS_EXIST"
ERR_SECTION_ITEM_IS_NOT_EXIST = "ERR_SECTION_ITEM_IS_NOT_EXIST"
ERR_SECTION_ITEM_ADD_FAILED = "ERR_SECTION_ITEM_ADD_FAILED"
ERR_SECTION_ITEM_DELETE_FAILED = "ERR_SECTION_ITEM_DELETE_FAILED"
ERR_SECTION_ENABLE_FAILED = "ERR_SECTION_ENABLE_FAILED"
ERR_SECTION_DELETE_FAILED = "ERR_SECTION_DELETE_FAILED"

# -- instances ----------------------------------------------------------------------------
ERR_INSTANCE_IS_EXIST = "ERR_INSTANCE_IS_EXIST"
ERR_INSTANCE_IS_NOT_EXIST = "ERR_INSTANCE_IS_NOT_EXIST"
ERR_INSTANCE_IS_NOT_VALID = "ERR_INSTANCE_IS_NOT_VALID"
ERR_INSTANCE_UPDATE_FAILED = "ERR_INSTANCE_UPDATE_FAILED"
ERR_INSTANCE_DELETE_FAILED = "ERR_INSTANCE_DELETE_FAILED"

# -- items --------------------------------------------------------------------------------
ERR_ITEM_IS_NOT_EXIST = "ERR_ITEM_IS_NOT_EXIST"
ERR_ITEM_IS_NOT_FOUND = "ERR_ITEM_IS_NOT_FOUND"
ERR_ITEM_UPDATE_FAILED = "ERR_ITEM_UPDATE_FAILED"
ERR_ITEM_TYPE_NOT_FOUND = "ERR_ITEM_TYPE_NOT_FOUND"
ERR_ITEM_VALUE_OPERATOR = "ERR_ITEM_VALUE_OPERATOR"
ERR_TIME_FORMATE_INVALID = "ERR_TIME_FORMATE_INVALID"
#: new: a value does not fit the item's type (or is too long for it)
ERR_ITEM_VALUE_INVALID = "ERR_ITEM_VALUE_INVALID"
#: new: the optional ``item_type`` a client sent is not the item's type
ERR_ITEM_TYPE_MISMATCH = "ERR_ITEM_TYPE_MISMATCH"
#: new: a ``sort`` key that the list does not support
ERR_SORT_INVALID = "ERR_SORT_INVALID"
