-- Lifetime value tier per user, from Segment's per-event warehouse table `order_completed`.
SELECT user_id,
       CASE
         WHEN SUM(revenue) >= 2000 THEN 'platinum'
         WHEN SUM(revenue) >= 800 THEN 'gold'
         WHEN SUM(revenue) >= 200 THEN 'silver'
         ELSE 'bronze'
       END AS ltv_tier
FROM order_completed
WHERE user_id IS NOT NULL
GROUP BY user_id
