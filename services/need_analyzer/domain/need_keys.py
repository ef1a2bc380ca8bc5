"""Need keys: a need's action and object from two closed lists (docs/need-keys.md), so needs
that mean the same group together whatever their words ("回复快一点", "需要更快的响应速度" and
"等了两个小时没人理" are all ``speed_up:response``).

An implied need (a problem with no request stated) is written from its key, in the customer's
language: ``deliver:package`` → "尽快送达包裹" / "deliver the package".
"""

from __future__ import annotations

NO_NEED = "none"

# action -> (Chinese, English) verb phrase
ACTIONS: dict[str, tuple[str, str]] = {
    "refund": ("退还", "refund"),
    "replace": ("更换", "replace"),
    "resend": ("补发", "resend"),
    "repair": ("维修", "repair"),
    "deliver": ("尽快送达", "deliver"),
    "speed_up": ("加快", "speed up"),
    "track": ("查询", "track"),
    "cancel": ("取消", "cancel"),
    "change": ("修改", "change"),
    "explain": ("了解", "know about"),
    "compensate": ("赔偿", "compensate for"),
    "fix": ("修复", "fix"),
    "restore_access": ("恢复登录", "restore access to"),
    "reset": ("重置", "reset"),
    "secure": ("保护", "secure"),
    "contact": ("联系", "contact"),
    "issue": ("开具", "issue"),
    "handle": ("处理", "deal with"),
    "apologize": ("道歉并说明", "apologise for"),
    "improve": ("改进", "improve"),
    "stop": ("停止发送", "stop"),
    "delete": ("删除", "delete"),
    "buy": ("购买", "buy"),
}

# object -> (Chinese, English) noun phrase
OBJECTS: dict[str, tuple[str, str]] = {
    "order": ("订单", "the order"),
    "package": ("包裹", "the package"),
    "product": ("商品", "the product"),
    "payment": ("支付", "the payment"),
    "charge": ("扣款", "the charge"),
    "refund": ("退款", "the refund"),
    "subscription": ("会员订阅", "the subscription"),
    "account": ("账号", "the account"),
    "password": ("密码", "the password"),
    "address": ("地址", "the address"),
    "invoice": ("发票", "the invoice"),
    "response": ("客服回复", "the replies"),
    "agent": ("人工客服", "a human agent"),
    "staff": ("员工的行为", "the staff's behaviour"),
    "app": ("App", "the app"),
    "coupon": ("优惠券", "the coupon"),
    "price": ("价格", "the prices"),
    "delivery": ("配送", "delivery"),
    "policy": ("政策", "the policy"),
    "store": ("门店", "the store"),
    "service": ("服务", "the service"),
    "complaint": ("投诉", "the complaint"),
    "messages": ("营销消息", "the marketing messages"),
}

# Where the action and object read badly together, the phrase a person would write.
PHRASES: dict[str, tuple[str, str]] = {
    "refund:order": ("退款", "refund the order"),
    "refund:charge": ("退还多扣的款", "refund the wrong charge"),
    "speed_up:response": ("尽快回复", "get a faster reply"),
    "contact:agent": ("安排人工客服联系", "talk to a human agent"),
    "handle:staff": ("处理员工的服务态度", "address the staff's behaviour"),
    "apologize:staff": ("得到道歉", "get an apology"),
    "restore_access:account": ("恢复账号登录", "get back into the account"),
    "fix:app": ("修复App的问题", "fix the app"),
    "track:package": ("查询包裹到哪了", "track the package"),
    "secure:payment": ("冻结被盗刷的支付方式", "secure the payment card"),
}


def is_key(key: str) -> bool:
    action, _, thing = key.partition(":")
    return action in ACTIONS and thing in OBJECTS


def implied_need(key: str, language: str) -> str:
    """The need a key stands for, in Chinese for Chinese text and in English otherwise."""
    chinese = language == "zh"
    if key in PHRASES:
        return PHRASES[key][0 if chinese else 1]
    action, _, thing = key.partition(":")
    verb, noun = ACTIONS[action], OBJECTS[thing]
    return f"{verb[0]}{noun[0]}" if chinese else f"{verb[1]} {noun[1]}"
